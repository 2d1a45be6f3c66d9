//! Parsers of user input return `Ok` or `Err` on arbitrary input, never panic (style: fuzz the parsers).
//! A deterministic generator mutates valid files: byte flips, truncation, token swaps.

mod common;

use rand::{Rng, SeedableRng};
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

#[test]
fn hyp_yaml_never_panics() {
    let base = Hyp::load("VOC").unwrap().to_yaml_string();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut errors = 0;
    for _ in 0..3000 {
        let text = mutate(&mut rng, &base);
        if Hyp::from_yaml_str(&text, std::path::Path::new("fuzz.yaml")).is_err() {
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
    for _ in 0..300 {
        std::fs::write(&p, mutate(&mut rng, &base)).unwrap();
        let _ = Dataset::from_yaml(&p);
    }
}
