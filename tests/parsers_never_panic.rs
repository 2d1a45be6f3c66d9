//! Parsers of user input return `Ok` or `Err` on arbitrary input, never panic or hang, and their errors name
//! the file (style: fuzz the parsers). A deterministic generator mutates valid files: byte flips,
//! truncation, token swaps. Each target runs a fixed number of cases (`YOLO_LAB_FUZZ_CASES` multiplies them
//! for a longer local run), so the default test run stays within CI's budget.

mod common;

use rand::{Rng, SeedableRng};
use std::path::Path;
use yolo_lab::data::{Dataset, Split};
use yolo_lab::hyp::Hyp;

const TOKENS: [&str; 12] = ["", " ", "\n", ":", "-", "nan", "1e999", "[", "{", "'", "0", "é"];

fn mutate(rng: &mut impl Rng, base: &str) -> String {
    let mut s: Vec<char> = base.chars().collect();
    for _ in 0..rng.random_range(1..6) {
        if s.is_empty() {
            break;
        }
        let i = rng.random_range(0..s.len());
        match rng.random_range(0..4) {
            0 => {
                s.truncate(i);
            }
            1 => {
                s[i] = rng.random_range(32u8..127) as char;
            }
            2 => {
                let t = TOKENS[rng.random_range(0..TOKENS.len())];
                s.splice(i..i, t.chars());
            }
            _ => {
                s.remove(i);
            }
        }
    }
    s.into_iter().collect()
}

/// Cases per target: `base` times `YOLO_LAB_FUZZ_CASES` (default 1).
fn cases(base: usize) -> usize {
    base * std::env::var("YOLO_LAB_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1)
}

/// Run `f` on every case, catching panics; fail with the first input that panicked.
fn never_panics<T: std::fmt::Debug>(inputs: impl IntoIterator<Item = T>, f: impl Fn(&T)) {
    for input in inputs {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&input)));
        assert!(r.is_ok(), "panicked on input:\n{input:?}");
    }
}

/// Flip, drop, duplicate or truncate a few bytes of a binary file.
fn mutate_bytes(rng: &mut impl Rng, base: &[u8]) -> Vec<u8> {
    let mut b = base.to_vec();
    for _ in 0..rng.random_range(1..4) {
        if b.is_empty() {
            break;
        }
        let i = rng.random_range(0..b.len());
        match rng.random_range(0..4) {
            0 => b[i] ^= 1 << rng.random_range(0..8),
            1 => b.truncate(i),
            2 => {
                b.remove(i);
            }
            _ => b.insert(i, rng.random()),
        }
    }
    b
}

#[test]
fn hyp_yaml_never_panics() {
    let base = Hyp::load("VOC").unwrap().to_yaml_string();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut errors = 0;
    for _ in 0..cases(3000) {
        let text = mutate(&mut rng, &base);
        if let Err(e) = Hyp::from_yaml_str(&text, std::path::Path::new("fuzz.yaml")) {
            assert!(e.to_string().contains("fuzz.yaml"), "{e}");
            errors += 1;
        }
    }
    assert!(errors > 100, "mutations do produce errors ({errors})");
}

#[test]
fn label_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = common::write_shapes(dir.path(), "train", 40, 32);
    let y = common::write_yaml(dir.path(), "train: images/train\nval: images/train\nnames: [a, b, c]\n");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    for im in &imgs {
        let lp = yolo_lab::data::label_path_for(im);
        let base = std::fs::read_to_string(&lp).unwrap();
        std::fs::write(&lp, mutate(&mut rng, &base)).unwrap();
    }
    // Ok with some images skipped, or Err when none is usable: either way no panic.
    if let Ok(s) = Dataset::from_yaml(&y).unwrap().scan(Split::Train) {
        assert_eq!(s.report.listed, 40);
        assert!(s.report.corrupt > 0);
    }
}

#[test]
fn data_yaml_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    common::write_shapes(dir.path(), "train", 1, 32);
    let base = format!(
        "path: {}\ntrain: images/train\nval: [images/train]\nnc: 3\nnames:\n  0: a\n  1: b\n  2: c\n",
        dir.path().display()
    );
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let p = dir.path().join("fuzz.yaml");
    for _ in 0..cases(300) {
        std::fs::write(&p, mutate(&mut rng, &base)).unwrap();
        if let Err(e) = Dataset::from_yaml(&p) {
            let e = e.to_string();
            // an error names the yaml, or the folder it points at that does not exist
            assert!(e.contains("fuzz.yaml") || e.contains(&dir.path().display().to_string()), "{e}");
        }
    }
}

/// Model yamls: parsed, and when they parse, built and run forward on a small image (issue 10.6).
/// Parse a model yaml; when it parses, build it and run a forward pass at the smallest size training
/// accepts (twice the largest stride). Errors must name the file. Returns whether it built.
fn parse_build_forward(text: &str) -> bool {
    match yolo_lab::model::ModelConfig::parse(text, Path::new("fuzz.yaml"), "fuzz", Some(3), None) {
        Err(e) => {
            assert!(e.to_string().contains("fuzz.yaml"), "{e}");
            false
        }
        Ok(cfg) => {
            let m = yolo_lab::model::Yolo::from_config(cfg, tch::Device::Cpu).expect("a checked config builds");
            let side = 2 * m.max_stride();
            let x = tch::Tensor::zeros([1, 3, side, side], (tch::Kind::Float, tch::Device::Cpu));
            let out = tch::no_grad(|| m.forward_t(&x, false));
            assert_eq!(out.len(), m.stride().len());
            true
        }
    }
}

#[test]
fn model_yaml_never_panics() {
    let base = yolo_lab::model::MODEL_CONFIGS[0].1;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let inputs: Vec<String> = (0..cases(400)).map(|_| mutate(&mut rng, base)).collect();
    let built = std::sync::atomic::AtomicUsize::new(0);
    never_panics(inputs, |text| {
        if parse_build_forward(text) {
            built.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    assert!(built.into_inner() > 5, "some mutations still build");
}

/// The yamls with the rarer modules (issue 13): ghost, transformer, BottleneckCSP/Focus/SPP, max-pool and
/// zero-pad, a four-level head; scaled down so that each mutation that builds is cheap to build and run.
#[test]
fn hub_model_yamls_never_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let bases: Vec<String> = [
        "hub/yolov5s-ghost.yaml",
        "hub/yolov5s-transformer.yaml",
        "yolov5s-v3.0.yaml",
        "hub/yolov3-tiny.yaml",
        "hub/yolov5-p2.yaml",
    ]
    .iter()
    .map(|f| {
        let text = std::fs::read_to_string(root.join(f)).unwrap();
        let width = text.lines().find(|l| l.starts_with("width_multiple")).unwrap().to_string();
        text.replace(&width, "width_multiple: 0.0625")
    })
    .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
    let inputs: Vec<String> = (0..cases(150)).map(|i| mutate(&mut rng, &bases[i % bases.len()])).collect();
    let built = std::sync::atomic::AtomicUsize::new(0);
    never_panics(inputs, |text| {
        if parse_build_forward(text) {
            built.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    assert!(built.into_inner() > 0, "some mutations still build");
}

/// evolve.csv (ours or YOLOv5's) through the reader and the results table (issue 10.6).
#[test]
fn evolve_csv_never_panics() {
    use yolo_lab::evolve::csv;
    let dir = tempfile::tempdir().unwrap();
    let keys = ["lr0", "lrf", "momentum"];
    let mut base = csv::header(&keys) + "\n";
    for i in 0..4 {
        base += &(csv::row_line(&[0.1 * i as f64, 0.2, 0.3, 0.4, 0.05, 0.02, 0.01, 0.01, 0.1, 0.937]) + "\n");
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let p = dir.path().join("evolve.csv");
    let inputs: Vec<String> = (0..cases(600)).map(|_| mutate(&mut rng, &base)).collect();
    never_panics(inputs, |text| {
        std::fs::write(&p, text).unwrap();
        match yolo_lab::results::EvolveResults::load(&p) {
            Err(e) => assert!(e.to_string().contains("evolve.csv"), "{e}"),
            Ok(r) => {
                let _ = r.summary();
                let _ = r.importance();
                let _ = r.top(3);
                if !r.is_empty() {
                    let _ = r.hyp(r.best_row());
                }
            }
        }
    });
}

/// results.csv through its reader (issue 10.6).
#[test]
fn results_csv_never_panics() {
    let header: Vec<String> = yolo_lab::train::RESULTS_COLUMNS.iter().map(|c| format!("{c:>20}")).collect();
    let row: Vec<String> = (0..14).map(|i| format!("{:>20}", 0.01 * i as f64)).collect();
    let base = format!("{}\n{}\n{}\n", header.join(","), row.join(","), row.join(","));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
    let inputs: Vec<String> = (0..cases(1000)).map(|_| mutate(&mut rng, &base)).collect();
    never_panics(inputs, |text| {
        if let Err(e) = yolo_lab::train::results::parse(text, Path::new("results.csv")) {
            assert!(e.to_string().contains("results.csv"), "{e}");
        }
    });
}

/// Checkpoints and weights files (safetensors) through every reader (issue 10.6).
#[test]
fn safetensors_readers_never_panic() {
    use yolo_lab::train::checkpoint;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.safetensors");
    let tensors = vec![
        ("model.0.conv.weight".to_string(), tch::Tensor::ones([4, 3, 3, 3], (tch::Kind::Float, tch::Device::Cpu))),
        ("model.0.bn.num_batches_tracked".to_string(), tch::Tensor::from(3i64)),
    ];
    checkpoint::write(&good, &tensors, &checkpoint::CheckpointMeta::default()).unwrap();
    let base = std::fs::read(&good).unwrap();
    let p = dir.path().join("fuzz.safetensors");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let inputs: Vec<Vec<u8>> = (0..cases(300)).map(|_| mutate_bytes(&mut rng, &base)).collect();
    let mut model = yolo_lab::model::Yolo::new("yolov5n", Some(3), tch::Device::Cpu).unwrap();
    for bytes in inputs {
        std::fs::write(&p, &bytes).unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for e in [checkpoint::read_meta(&p).err(), checkpoint::read_tensors(&p).err(), model.load_partial(&p).err()]
                .into_iter()
                .flatten()
            {
                assert!(e.to_string().contains("fuzz.safetensors"), "{e}");
            }
        }));
        assert!(r.is_ok(), "panicked on a mutated checkpoint ({} bytes)", bytes.len());
    }
}

/// YOLOv5 `.pt` checkpoints (issue 13.3): a mutated pickle inside an intact zip, and mutated zip bytes, read
/// as a checkpoint and loaded as a model, return errors naming the file.
#[test]
fn pt_checkpoints_never_panic() {
    use std::io::{Read, Write};
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/unstripped-tiny.pt");
    let whole = std::fs::read(&src).unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(whole.clone())).unwrap();
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let mut b = Vec::new();
        f.read_to_end(&mut b).unwrap();
        entries.push((f.name().to_string(), b));
    }
    let pkl = entries.iter().position(|(n, _)| n.ends_with("data.pkl")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("fuzz.pt");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(13);
    let (mut read_ok, n) = (0, cases(300));
    for case in 0..n {
        let bytes = if case % 4 == 0 {
            mutate_bytes(&mut rng, &whole)
        } else {
            let mut e = entries.clone();
            e[pkl].1 = mutate_bytes(&mut rng, &entries[pkl].1);
            let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
            for (name, b) in &e {
                w.start_file(name.as_str(), opts).unwrap();
                w.write_all(b).unwrap();
            }
            w.finish().unwrap().into_inner()
        };
        std::fs::write(&p, &bytes).unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            match yolo_lab::model::Checkpoint::read(&p) {
                Err(e) => assert!(e.to_string().contains("fuzz.pt"), "{e}"),
                Ok(ck) => {
                    if let Err(e) = yolo_lab::model::Yolo::from_checkpoint(&ck, tch::Device::Cpu) {
                        assert!(e.to_string().contains("fuzz.pt"), "{e}");
                    }
                    return true;
                }
            }
            false
        }));
        match r {
            Ok(ok) => read_ok += usize::from(ok),
            Err(_) => panic!("panicked on mutation {case} of the checkpoint ({} bytes)", bytes.len()),
        }
    }
    assert!(read_ok < n, "some mutations are refused");
}
