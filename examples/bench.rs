//! Throughput benchmarks, side by side with YOLOv5 when a reference environment is present (issue 11).
//!
//! `cargo run --release --example bench -- MODE [--data NAME|YAML] [--img N] [--repeat N]`
//!
//! | mode | measures | last line |
//! | --- | --- | --- |
//! | `loader` | one thread, mosaic, hyp scratch-low, RAM cache: augmented items over the training images | `loader images/s: N` |
//! | `step` | yolov5n nc 80, batch 16, 320 px, 2 threads: forward + loss + backward + clip 10 + SGD, median of 5 | `step ms/iter: N` |
//! | `train` | yolov5n from scratch, batch 16, 2 workers, RAM cache, no validation, 6 epochs: train-loop images/s | `train images/s: N` |
//! | `evolve` | 1-epoch generations on a 16-image set, no AutoAnchor | `evolve generations/h: N` |
//! | `prune` | 24 generations of 3 epochs on shapes at `--img` (160 recommended), with `sha:1:3` pruning and without: wall time, best complete fitness, rung-vs-final ρ, and the fidelity ρ of the unpruned run against 10-epoch retrainings (3 top + 3 random rows) | `prune speedup: N` |
//!
//! With `YOLOV5_DIR` (a checkout of ultralytics/yolov5) and a Python that imports torch (`YOLOV5_PY`, else
//! `REF_PY`, else `python3`), every mode also runs YOLOv5's equivalent in the same run, from the timers in
//! `../shared/bench` (`YOLO_LAB_BENCH_DIR` overrides), and prints `ratio vs yolov5: R` (above 1: yolo-lab is
//! faster; for `step` the ratio of times, below 1: yolo-lab is faster). A reference that fails is reported with
//! its output, never silently skipped. `--repeat N` alternates the two programs N times and keeps the best of
//! each. A benchmark: it prints figures and asserts nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use yolo_lab::data::{Cache, Dataset, Loader, LoaderConfig, Split};
use yolo_lab::prelude::*;

struct Args {
    mode: String,
    data: String,
    img: u32,
    repeat: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mode = it.next().ok_or(
        "usage: bench MODE [--data NAME|YAML] [--img N] [--repeat N]; MODE is loader, step, train, evolve or prune",
    )?;
    let mut a = Args { mode, data: "shapes".into(), img: 320, repeat: 1 };
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--data" => a.data = value,
            "--img" => a.img = value.parse().map_err(|_| format!("--img {value}: not a number"))?,
            "--repeat" => a.repeat = value.parse().map_err(|_| format!("--repeat {value}: not a number"))?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(a)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let result = match args.mode.as_str() {
        "loader" => loader(&args),
        "step" => step(&args),
        "train" => train(&args),
        "evolve" => evolve(&args),
        "prune" => prune(&args),
        other => Err(yolo_lab::Error::Config {
            name: "mode",
            message: format!("`{other}` is not loader, step, train, evolve or prune"),
        }),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// The YOLOv5 reference: its checkout, a Python with torch, and the timers directory.
struct Reference {
    yolov5: PathBuf,
    python: String,
    timers: PathBuf,
}

impl Reference {
    fn find() -> Option<Reference> {
        let yolov5 = PathBuf::from(std::env::var("YOLOV5_DIR").ok()?);
        let python =
            std::env::var("YOLOV5_PY").or_else(|_| std::env::var("REF_PY")).unwrap_or_else(|_| "python3".into());
        let timers = std::env::var("YOLO_LAB_BENCH_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bench"));
        Some(Reference { yolov5, python, timers })
    }

    /// Run a timer script in the checkout and return the number on its last line starting with `key`.
    fn run(&self, script: &str, args: &[&str], env: &[(&str, &str)], key: &str) -> Option<f64> {
        self.run_with(script, args, env, key, |line| line.strip_prefix(key).and_then(|v| v.trim().parse().ok()))
    }

    /// Run a timer script in the checkout; `pick` finds the figure in a line of its output (last match wins).
    /// A script that fails or prints no figure is reported with the tail of its output.
    fn run_with(
        &self,
        script: &str,
        args: &[&str],
        env: &[(&str, &str)],
        key: &str,
        pick: impl Fn(&str) -> Option<f64>,
    ) -> Option<f64> {
        let mut cmd = Command::new(&self.python);
        cmd.arg(self.timers.join(script)).args(args).current_dir(&self.yolov5);
        cmd.env("REF_Y5", &self.yolov5)
            .env("YOLO_OFFLINE", "1")
            .env("YOLO_AUTOINSTALL", "false")
            .env("YOLOv5_AUTOINSTALL", "false");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = match cmd.output() {
            Ok(o) => o,
            Err(e) => {
                println!("yolov5 reference: cannot run {}: {e}", self.python);
                return None;
            }
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let found = text.lines().rev().find_map(&pick);
        if found.is_none() {
            let err = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = err.lines().chain(text.lines()).collect();
            println!(
                "yolov5 reference: {script} gave no `{key}` line (exit {}); last output:\n  {}",
                out.status,
                tail[tail.len().saturating_sub(8)..].join("\n  ")
            );
        }
        found
    }
}

/// The training images of a data set (by registry name or yaml).
fn train_samples(data: &str) -> yolo_lab::Result<(Dataset, yolo_lab::data::Samples)> {
    let r = yolo_lab::report::Reporter::new(ProgressMode::Quiet);
    let ds = Dataset::load_with(data, &r)?;
    let samples = ds.scan_with(Split::Train, &r)?;
    Ok((ds, samples))
}

fn loader(a: &Args) -> yolo_lab::Result<()> {
    let (ds, samples) = train_samples(&a.data)?;
    let hyp = Hyp::load("scratch-low")?;
    let cfg = LoaderConfig { img_size: a.img, batch: 16, workers: 0, cache: Cache::Ram, ..Default::default() };
    let loader = Loader::build(&samples, &hyp, cfg, &yolo_lab::report::Reporter::new(ProgressMode::Silent))?;
    let n = loader.images();
    println!("loader: {} ({n} images), {} px, hyp scratch-low, RAM cache, one thread", ds.name, a.img);
    let reference = Reference::find();
    let images_dir = ds.train.first().cloned().unwrap_or_default();
    let (mut ours, mut theirs) = (0f64, None::<f64>);
    for round in 0..a.repeat {
        for k in 0..16.min(n) {
            loader.item(k, 1000 + round as u64)?;
        }
        // four passes (YOLOv5's timer makes one; a longer run is steadier on a shared machine)
        let t = Instant::now();
        for epoch in 0..4 {
            for k in 0..n {
                loader.item(k, (4 * round + epoch) as u64)?;
            }
        }
        let rate = (4 * n) as f64 / t.elapsed().as_secs_f64();
        println!("yolo-lab {rate:.1} images/s");
        ours = ours.max(rate);
        if let Some(r) = &reference {
            let dir = images_dir.to_string_lossy().to_string();
            let img = a.img.to_string();
            if let Some(y) =
                r.run("yolov5_loader_rate.py", &[&dir, &img], &[("OMP_NUM_THREADS", "1")], "loader images/s:")
            {
                println!("yolov5   {y:.1} images/s");
                theirs = Some(theirs.map_or(y, |t: f64| t.max(y)));
            }
        }
    }
    // no GPU here: what feeding one at 1000 images/s would take, from the per-core rates
    let cores = |rate: f64| 1000.0 / rate;
    match theirs {
        Some(y) => {
            println!("cores to feed a GPU at 1000 images/s: yolo-lab {:.1}, yolov5 {:.1}", cores(ours), cores(y))
        }
        None => println!("cores to feed a GPU at 1000 images/s: yolo-lab {:.1}", cores(ours)),
    }
    if let Some(y) = theirs {
        println!("yolov5 loader images/s: {y:.1}");
        println!("ratio vs yolov5: {:.2}", ours / y);
    }
    println!("loader images/s: {ours:.1}");
    Ok(())
}

/// Median of a few timings.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A bare training step on one preloaded batch: zero_grad + forward, loss, backward, clip 10, SGD (Nesterov,
/// no weight decay, as PyTorch's timer), in the trainer's memory layout (BENCH_LAYOUT=nchw for the other).
struct BareStep {
    model: Yolo,
    loss: yolo_lab::loss::ComputeLoss,
    opt: yolo_lab::optim::Optimizer,
    x: tch::Tensor,
    targets: tch::Tensor,
    /// Per timed step: the five phases in ms.
    parts: Vec<[f64; 5]>,
}

impl BareStep {
    fn new(nc: i64, x: tch::Tensor, targets: tch::Tensor, hyp: &Hyp, loss_img: i64) -> yolo_lab::Result<BareStep> {
        use yolo_lab::loss::{ComputeLoss, LossConfig};
        use yolo_lab::optim::{Optimizer, OptimizerKind};
        let mut model = Yolo::new("yolov5n", Some(nc), tch::Device::Cpu)?;
        let loss = ComputeLoss::new(&model, LossConfig::from_hyp(hyp, nc, 3, loss_img, 0.0));
        let opt = Optimizer::new(OptimizerKind::Sgd, &model, 0.01, 0.937, 0.0);
        let mut x = x;
        if std::env::var("BENCH_LAYOUT").as_deref() != Ok("nchw") {
            model.use_channels_last();
            x = yolo_lab::model::channels_last(&x);
        }
        Ok(BareStep { model, loss, opt, x, targets, parts: Vec::new() })
    }

    /// One step; returns its ms.
    fn run(&mut self) -> f64 {
        use yolo_lab::optim::{MAX_GRAD_NORM, clip_grad_norm};
        let t = Instant::now();
        self.opt.zero_grad();
        let pred = self.model.forward_t(&self.x, true);
        let t1 = Instant::now();
        let out = self.loss.forward(&pred, &self.targets);
        let t2 = Instant::now();
        out.total.backward();
        let t3 = Instant::now();
        clip_grad_norm(&self.opt.params(), MAX_GRAD_NORM);
        let t4 = Instant::now();
        self.opt.step();
        let t5 = Instant::now();
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1000.0;
        self.parts.push([ms(t, t1), ms(t1, t2), ms(t2, t3), ms(t3, t4), ms(t4, t5)]);
        ms(t, t5)
    }

    /// Median of five steps after a warm-up.
    fn median_ms(&mut self) -> f64 {
        self.run();
        median((0..5).map(|_| self.run()).collect())
    }

    fn phases(&self) -> String {
        let phase = |k: usize| median(self.parts.iter().map(|p| p[k]).collect());
        format!(
            "forward {:.1}, loss {:.1}, backward {:.1}, clip {:.1}, sgd {:.1}",
            phase(0),
            phase(1),
            phase(2),
            phase(3),
            phase(4)
        )
    }
}

fn step(a: &Args) -> yolo_lab::Result<()> {
    use tch::{Device, Kind, Tensor};
    tch::set_num_threads(2);
    let img = a.img as i64;
    println!(
        "step: yolov5n nc 80, batch 16, {img} px, 2 threads: forward + loss + backward + clip 10 + SGD, median of 5"
    );
    let layout = std::env::var("BENCH_LAYOUT").unwrap_or_else(|_| "channels-last".into());
    println!("memory layout: {layout} (BENCH_LAYOUT=nchw for the other)");
    let mut hyp = Hyp::default();
    hyp.set("obj", 0.25)?; // pytorch_step_time.py's loss settings
    tch::manual_seed(0);
    let x = Tensor::rand([16, 3, img, img], (Kind::Float, Device::Cpu));
    let targets = Tensor::from_slice(&[0f32, 1.0, 0.5, 0.5, 0.2, 0.3, 1.0, 2.0, 0.3, 0.6, 0.1, 0.1]).view([2, 6]);
    let mut bare = BareStep::new(80, x, targets, &hyp, 640)?; // 640 with obj 0.25: the timer's loss gains
    let reference = Reference::find();
    let (mut ours, mut theirs) = (f64::MAX, None::<f64>);
    for _ in 0..a.repeat {
        let ms = bare.median_ms();
        println!("yolo-lab {ms:.1} ms/iter");
        ours = ours.min(ms);
        if let Some(r) = &reference
            && a.img == 320
            && let Some(y) = r.run("pytorch_step_time.py", &[], &[], "step ms/iter:")
        {
            println!("pytorch  {y:.1} ms/iter");
            theirs = Some(theirs.map_or(y, |t: f64| t.min(y)));
        }
    }
    println!("yolo-lab phases (median ms): {}", bare.phases());
    if let Some(y) = theirs {
        println!("pytorch step ms/iter: {y:.1}");
        println!("ratio vs yolov5: {:.3} (time; below 1 is faster)", ours / y);
    }
    println!("step ms/iter: {ours:.1}");
    Ok(())
}

/// The number in `"key": N` of a JSON line.
fn json_number(line: &str, key: &str) -> Option<f64> {
    let rest = &line[line.find(&format!("\"{key}\":"))? + key.len() + 3..];
    rest.trim_start().split([',', '}']).next()?.trim().parse().ok()
}

/// The data yaml a YOLOv5 run reads for this data set (a registry set gets one written beside its images).
fn data_yaml(ds: &Dataset) -> yolo_lab::Result<PathBuf> {
    if ds.source.extension().is_some_and(|e| e == "yaml" || e == "yml") {
        return Ok(ds.source.clone());
    }
    let yaml = ds.root.join("data.yaml");
    if !yaml.is_file() {
        let list = |v: &[PathBuf]| v.iter().map(|p| format!("'{}'", p.display())).collect::<Vec<_>>().join(", ");
        let text = format!(
            "path: {}\ntrain: [{}]\nval: [{}]\nnames: [{}]\n",
            ds.root.display(),
            list(&ds.train),
            list(&ds.val),
            ds.names.join(", ")
        );
        std::fs::write(&yaml, text).map_err(|e| yolo_lab::Error::io(&yaml, e))?;
    }
    Ok(yaml)
}

/// yolov5n from scratch on `ds` at `img` px, batch 16, no AutoAnchor, on the CPU: what both timed runs share.
fn base_trainer(ds: &Dataset, img: u32) -> Trainer {
    Trainer::new().data(ds.clone()).cfg("yolov5n").imgsz(img as i64).batch(16).noautoanchor(true).device("cpu")
}

/// The timer's arguments and YOLOv5 `train.py`'s for the same base (`--threads 2 ... -- --img ... --workers 2`),
/// followed by `extra` train.py arguments.
fn yolov5_args(timer: &[&str], yaml: &Path, img: u32, epochs: usize, project: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> =
        ["--threads", "2", "--skip-epochs", "0"].iter().chain(timer).map(|s| s.to_string()).collect();
    v.push("--".into());
    let (img, epochs) = (img.to_string(), epochs.to_string());
    let common = [
        "--img",
        &img,
        "--batch",
        "16",
        "--epochs",
        &epochs,
        "--cfg",
        "models/yolov5n.yaml",
        "--weights",
        "",
        "--device",
        "cpu",
        "--workers",
        "2",
        "--noautoanchor",
        "--noplots",
    ];
    v.extend(common.iter().map(|s| s.to_string()));
    v.extend([
        "--data".into(),
        yaml.to_string_lossy().to_string(),
        "--project".into(),
        project.to_string_lossy().to_string(),
    ]);
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn train(a: &Args) -> yolo_lab::Result<()> {
    let epochs = 6;
    let (ds, samples) = train_samples(&a.data)?;
    println!(
        "train: yolov5n from scratch on {} ({} images), {} px, batch 16, 2 workers, RAM cache, no validation, {epochs} epochs",
        ds.name,
        samples.len(),
        a.img
    );
    let dir = std::env::temp_dir().join(format!("yolo-lab-bench-train-{}", std::process::id()));
    let reference = Reference::find();
    let yaml = data_yaml(&ds)?;
    let (mut ours, mut theirs) = (0f64, None::<f64>);
    for round in 0..a.repeat {
        let run = base_trainer(&ds, a.img)
            .workers(2)
            .cache(Cache::Ram)
            .epochs(epochs)
            .noval(true)
            .nosave(true)
            .project(&dir)
            .name(format!("r{round}"))
            .progress(ProgressMode::Quiet)
            .fit()?;
        println!("yolo-lab {:.2} images/s", run.images_per_second);
        ours = ours.max(run.images_per_second);
        if let Some(r) = &reference {
            let args = yolov5_args(
                &[],
                &yaml,
                a.img,
                epochs,
                &dir.join("y5"),
                &["--cache", "ram", "--noval", "--nosave", "--name", "t"],
            );
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let pick = |l: &str| l.contains("THROUGHPUT").then(|| json_number(l, "images_per_s")).flatten();
            if let Some(v) = r.run_with("yolov5_timed_train.py", &args, &[], "THROUGHPUT", pick) {
                println!("yolov5   {v:.2} images/s");
                theirs = Some(theirs.map_or(v, |t: f64| t.max(v)));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    // the same step bare, on one preloaded batch of this data (what the data pipeline adds to an iteration)
    tch::set_num_threads(2);
    let loader = Loader::build(
        &samples,
        &Hyp::load("scratch-low")?,
        LoaderConfig { img_size: a.img, batch: 16, workers: 0, ..Default::default() },
        &yolo_lab::report::Reporter::new(ProgressMode::Silent),
    )?;
    let batch = loader.batch(0, 0)?;
    let x = batch.images.to_kind(tch::Kind::Float) / 255.0;
    let mut bare = BareStep::new(ds.nc() as i64, x, batch.targets, &Hyp::load("scratch-low")?, a.img as i64)?;
    let bare_ms = bare.median_ms();
    let full_ms = 16.0 * 1000.0 / ours;
    println!(
        "full iteration {full_ms:.0} ms (best run) / bare step {bare_ms:.0} ms: {:.3} (the optimizer steps every 4th iteration in training, accumulating to 64 images)",
        full_ms / bare_ms
    );
    if let Some(y) = theirs {
        println!("yolov5 train images/s: {y:.2}");
        println!("ratio vs yolov5: {:.3}", ours / y);
    }
    println!("train images/s: {ours:.2}");
    Ok(())
}

fn evolve(a: &Args) -> yolo_lab::Result<()> {
    // one generation = one training = one evolve.csv row (YOLOv5 5081342f's `--evolve N` trains N populations
    // of 50, so its side runs `--evolve 1`: 50 trainings)
    let generations = 12;
    let dir = std::env::temp_dir().join(format!("yolo-lab-bench-evolve-{}", std::process::id()));
    // a 16-image set (16 more for validation), rendered at the bench size
    let r = yolo_lab::report::Reporter::new(ProgressMode::Silent);
    let ds = yolo_lab::data::ShapesConfig { seed: 3, train: 16, val: 16, imgsz: a.img, ..Default::default() }
        .generate_with(&r)?;
    println!(
        "evolve: 1-epoch trainings of yolov5n on 16 shapes images at {} px, batch 16, no AutoAnchor; a generation is one training (one evolve.csv row)",
        a.img
    );
    let reference = Reference::find();
    let yaml = data_yaml(&ds)?;
    let (mut ours, mut theirs) = (0f64, None::<f64>);
    for round in 0..a.repeat {
        let base = base_trainer(&ds, a.img).epochs(1).progress(ProgressMode::Silent);
        let t = Instant::now();
        let run = Evolver::new(base).generations(generations).project(dir.join(format!("r{round}"))).run()?;
        let wall = t.elapsed().as_secs_f64();
        let text =
            std::fs::read_to_string(run.dir.join("generations.csv")).map_err(|e| yolo_lab::Error::io(&run.dir, e))?;
        let train_s: f64 = text.lines().skip(1).filter_map(|l| l.split(',').nth(7)?.parse::<f64>().ok()).sum();
        let rate = generations as f64 / wall * 3600.0;
        println!(
            "yolo-lab {rate:.0} generations/h: {:.2} s each, of it {:.2} s outside training and validation",
            wall / generations as f64,
            (wall - train_s) / generations as f64
        );
        ours = ours.max(rate);
        let last_train_s = train_s / generations as f64;
        if let Some(r) = &reference {
            let out = dir.join(format!("y5-{round}"));
            let json = dir.join(format!("y5-{round}.json"));
            let js = json.to_string_lossy().to_string();
            let args = yolov5_args(&["--json", &js], &yaml, a.img, 1, &out, &["--evolve", "1", "--name", "e"]);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            // the run's figures come from its JSON record and evolve.csv; run_with reports a failed run
            let _ = r.run_with("yolov5_timed_train.py", &args, &[], "THROUGHPUT", |l| {
                l.contains("THROUGHPUT").then_some(0.0)
            });
            let record = std::fs::read_to_string(&json).unwrap_or_default();
            let total = record.lines().find_map(|l| json_number(l, "total_wall_s"));
            let rows = std::fs::read_to_string(out.join("e/evolve.csv")).map(|t| t.lines().count().saturating_sub(1));
            match (total, rows) {
                (Some(total), Ok(rows)) if rows > 0 => {
                    let rate = rows as f64 / total * 3600.0;
                    // the timer's epoch hooks do not bracket a training inside `--evolve`, so YOLOv5's overhead
                    // is estimated: its time per training minus yolo-lab's training + validation time
                    println!(
                        "yolov5   {rate:.0} generations/h: {rows} trainings in {total:.0} s, {:.2} s each, of it ~{:.2} s outside training and validation (if those cost what yolo-lab's do)",
                        total / rows as f64,
                        total / rows as f64 - last_train_s
                    );
                    theirs = Some(theirs.map_or(rate, |t: f64| t.max(rate)));
                }
                _ => println!("yolov5 reference: no evolve.csv rows or total time under {}", out.display()),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(y) = theirs {
        println!("yolov5 evolve generations/h: {y:.0}");
        println!("ratio vs yolov5: {:.2}", ours / y);
    }
    println!("evolve generations/h: {ours:.0}");
    Ok(())
}

/// Column `name` of generations.csv, per line.
fn generations_column(dir: &Path, name: &str) -> yolo_lab::Result<Vec<String>> {
    let p = dir.join("generations.csv");
    let text = std::fs::read_to_string(&p).map_err(|e| yolo_lab::Error::io(&p, e))?;
    let mut lines = text.lines();
    let head = yolo_lab::evolve::csv::split_line(lines.next().unwrap_or_default());
    let k = head.iter().position(|h| h == name).unwrap_or(usize::MAX);
    Ok(lines.map(|l| yolo_lab::evolve::csv::split_line(l).get(k).cloned().unwrap_or_default()).collect())
}

fn prune(a: &Args) -> yolo_lab::Result<()> {
    let (generations, epochs, full_epochs, k) = (24, 3, 10, 3);
    let dir = std::env::temp_dir().join(format!("yolo-lab-bench-prune-{}", std::process::id()));
    let (ds, _) = train_samples(&a.data)?;
    println!(
        "prune: {generations} generations of yolov5n, {epochs} epochs each, on {} at {} px, batch 16; sha:1:3 against no pruning, same seed",
        ds.name, a.img
    );
    let base = || base_trainer(&ds, a.img).epochs(epochs).workers(2).progress(ProgressMode::Silent);
    let mut walls = vec![];
    let mut dirs = vec![];
    for (name, pruner) in [("none", Pruner::None), ("sha", Pruner::SuccessiveHalving { min_epochs: 1, reduction: 3 })] {
        let t = Instant::now();
        let run = Evolver::new(base()).generations(generations).prune(pruner).project(&dir).name(name).run()?;
        let wall = t.elapsed().as_secs_f64();
        let results = run.results()?;
        let pruned = generations_column(&run.dir, "pruned_at_epoch")?;
        let trained: usize =
            generations_column(&run.dir, "epochs")?.iter().filter_map(|e| e.parse::<usize>().ok()).sum();
        let complete: Vec<usize> = (0..results.len()).filter(|&r| pruned.get(r).is_none_or(|p| p.is_empty())).collect();
        let best = complete.iter().map(|&r| results.fitness()[r]).fold(f64::NAN, f64::max);
        println!(
            "{name:>4}: {wall:.0} s, {trained} epochs trained, {} of {generations} generations complete, best complete fitness {best:.5}",
            complete.len()
        );
        if pruner != Pruner::None {
            // the pruner's own fidelity: epoch-0 fitness (its rung) against the final fitness of complete rows
            let rungs = std::fs::read_to_string(run.dir.join("rungs.csv")).unwrap_or_default();
            let at_rung: std::collections::HashMap<usize, f64> = rungs
                .lines()
                .skip(1)
                .filter_map(|l| {
                    let c: Vec<&str> = l.split(',').collect();
                    (c.len() == 3 && c[1] == "0").then(|| Some((c[0].parse().ok()?, c[2].parse().ok()?))).flatten()
                })
                .collect();
            let (x, y): (Vec<f64>, Vec<f64>) =
                complete.iter().filter_map(|r| Some((*at_rung.get(r)?, results.fitness()[*r]))).unzip();
            println!(
                "{name:>4}: rung (1 epoch) vs final ({epochs} epochs) fitness over {} complete generations: Spearman's rho {:.3}",
                x.len(),
                yolo_lab::results::spearman(&x, &y)
            );
        }
        walls.push(wall);
        dirs.push(run.dir.clone());
    }
    // fidelity of the unpruned evolution's 3-epoch budget against 10-epoch retrainings
    let results = EvolveResults::load(dirs[0].join("evolve.csv"))?;
    let full = base().epochs(full_epochs).project(dir.join("fidelity"));
    let t = Instant::now();
    let f = results.fidelity(&full, k, 0)?;
    println!("{f}");
    println!("fidelity: {} retrainings of {full_epochs} epochs in {:.0} s", f.rows.len(), t.elapsed().as_secs_f64());
    println!("fidelity rho: {:.3}", f.rho);
    let _ = std::fs::remove_dir_all(&dir);
    println!("prune speedup: {:.2}", walls[0] / walls[1]);
    Ok(())
}
