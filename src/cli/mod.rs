//! The command-line seam: parse flags, call the library, print results.

pub mod args;

use anyhow::Context;
use args::{Cli, Command, DataArgs, DemoArgs, TrainArgs};
use clap::Parser;
use std::process::ExitCode;
use yolo_lab::data::Cache;
use yolo_lab::data::{self, Dataset, Loader, LoaderConfig, Split};
use yolo_lab::gpu::EnvReport;
use yolo_lab::hyp::Hyp;
use yolo_lab::train::{Freeze, Trainer};

/// Parse the command line and run it.
pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Doctor => {
            let report = EnvReport::collect();
            println!("{report}");
            Ok(if report.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Data(a) => data_summary(&a).map(|_| ExitCode::SUCCESS),
        Command::VocConvert { devkit, out } => {
            let n = data::convert_voc(&devkit, &out)?;
            println!("converted {n} images into {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(a) => demo(&a).map(|_| ExitCode::SUCCESS),
        Command::Train(a) => {
            let run = trainer(&a)?.fit()?;
            println!("results: {}", run.results_csv().display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Parity { dir } => {
            let report = yolo_lab::parity::run(&dir)?;
            println!("{report}");
            Ok(if report.passed() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Model { cfg, nc, img } => {
            let m = yolo_lab::model::Yolo::new(&cfg, Some(nc), tch::Device::Cpu)?;
            println!("{}", m.summary(img));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Scan both splits, summarise them and save one augmented training batch and one validation batch as PNGs.
fn data_summary(a: &DataArgs) -> anyhow::Result<()> {
    let ds = Dataset::load(&a.data)?;
    let hyp = Hyp::load(&a.hyp)?;
    println!("data set `{}`: {} classes ({}), root {}", ds.name, ds.nc(), ds.names.join(", "), ds.root.display());
    let train = ds.scan(Split::Train)?;
    let val = ds.scan(Split::Val)?; // each scan prints its summary line
    let cfg = LoaderConfig { img_size: a.img, batch: a.batch, seed: a.seed, ..Default::default() };
    let loader = Loader::new(&train, &hyp, cfg)?;
    let batch = loader.batch(0, 0)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let p = a.out.join("train_batch0.png");
    data::save_batch_png(&batch, &ds.names, &p)?;
    println!(
        "augmented training batch {:?} ({} targets) -> {}",
        batch.images.size(),
        batch.targets.size()[0],
        p.display()
    );
    let vloader = Loader::new(&val, &hyp, LoaderConfig { workers: 0, ..LoaderConfig::val(a.img, a.batch) })?;
    let vb = vloader.batch(0, 0)?;
    let p = a.out.join("val_batch0.png");
    data::save_batch_png(&vb, &ds.names, &p)?;
    println!("validation batch {:?} (rectangular) -> {}", vb.images.size(), p.display());
    Ok(())
}

/// The main job on the built-in data set. Until training lands it generates, scans, summarises and
/// previews the `shapes` set.
fn demo(a: &DemoArgs) -> anyhow::Result<()> {
    println!("{}\n", EnvReport::collect());
    let args =
        DataArgs { data: "shapes".into(), hyp: "scratch-low".into(), img: 320, batch: 16, seed: 0, out: a.out.clone() };
    data_summary(&args)
}

/// The one conversion from flags to the library's builder.
pub fn trainer(a: &TrainArgs) -> anyhow::Result<Trainer> {
    let mut t = Trainer::new()
        .data(a.data.as_str())
        .cfg(a.cfg.as_str())
        .hyp(a.hyp.as_str())
        .epochs(a.epochs)
        .batch(a.batch_size)
        .imgsz(a.img)
        .device(a.device.as_str())
        .freeze(Freeze::from_cli(&a.freeze))
        .cache(a.cache.as_deref().unwrap_or("none").parse::<Cache>()?)
        .optimizer(a.optimizer.parse()?)
        .sam(a.sam)
        .cos_lr(a.cos_lr)
        .label_smoothing(a.label_smoothing)
        .patience(a.patience)
        .rect(a.rect)
        .multi_scale(a.multi_scale)
        .noval(a.noval)
        .nosave(a.nosave)
        .noautoanchor(a.noautoanchor)
        .workers(a.workers)
        .seed(a.seed)
        .project(a.project.clone())
        .name(a.name.as_str())
        .exist_ok(a.exist_ok)
        .varifocal(a.varifocal);
    if !a.weights.is_empty() {
        t = t.weights(&a.weights);
    }
    if let Some(r) = &a.resume {
        t = t.resume(r);
    }
    Ok(t)
}
