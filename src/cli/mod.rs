//! The command-line seam: parse flags, call the library, print results.

pub mod args;

use anyhow::Context;
use args::{Cli, Command, DataArgs, DemoArgs, EvolveArgs, TrainArgs};
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;
use yolo_lab::data::Cache;
use yolo_lab::data::{self, Dataset, Loader, LoaderConfig, Split};
use yolo_lab::evolve::{Evolver, Ga, Objective, PopulationSettings};
use yolo_lab::gpu::EnvReport;
use yolo_lab::hyp::Hyp;
use yolo_lab::train::{Freeze, Trainer};

/// Parse the command line and run it.
pub fn run() -> anyhow::Result<ExitCode> {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).map_err(|e| e.exit())?;
    if let Some((_, sub)) = matches.subcommand() {
        let given: Vec<String> = sub
            .ids()
            .filter(|id| sub.value_source(id.as_str()) == Some(ValueSource::CommandLine))
            .map(|id| id.to_string())
            .collect();
        match &mut cli.command {
            Command::Train(a) => a.given = given,
            Command::Evolve(a) => a.train.given = given,
            Command::EvolveImport(a) => a.evolve.train.given = given,
            _ => {}
        }
    }
    match cli.command {
        Command::Doctor => {
            let report = EnvReport::collect();
            println!("{report}");
            Ok(if report.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Data(a) => data_summary(&a).map(|_| ExitCode::SUCCESS),
        Command::VocConvert { devkit, out } => {
            let n = data::convert_voc(&devkit, &out, &yolo_lab::report::Reporter::default())?;
            println!("converted {n} images into {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(a) => demo(&a).map(|_| ExitCode::SUCCESS),
        Command::Train(a) => {
            let t = trainer(&a)?;
            let run = t.fit()?;
            if t.progress != yolo_lab::train::ProgressMode::Silent {
                println!("results: {}", run.results_csv().display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Evolve(a) => {
            let evo = evolver(&a)?.run()?;
            println!("{evo}");
            // YOLOv5 draws evolve.png at the end of --evolve; the library draws nothing, the CLI does
            if evo.rows > 0 {
                let png = evo.dir.join("evolve.png");
                match evo.results().and_then(|r| r.plot_evolve()).and_then(|f| f.save(&png)) {
                    Ok(()) => println!("{}", png.display()),
                    Err(e) => eprintln!("WARNING evolve.png not drawn: {e}"),
                }
                let multi = yolo_lab::evolve::objective::stored(&evo.dir)?.filter(|o| o.len() > 1);
                if let Some(objectives) = multi {
                    let png = evo.dir.join("pareto.png");
                    let results = evo.results()?;
                    match results.plot_pareto().and_then(|f| f.save(&png)) {
                        Ok(()) => println!("{}", png.display()),
                        Err(e) => eprintln!("WARNING pareto.png not drawn: {e}"),
                    }
                    println!(
                        "Pareto front of {}:\n{}",
                        yolo_lab::evolve::objective::names(&objectives),
                        results.pareto()?
                    );
                    if let Some(k) = results.knee(&objectives) {
                        let y = evo.dir.join("hyp_knee.yaml");
                        results.save_row_yaml(k.row, &y)?;
                        println!("knee: row {}, its hyperparameters in {}", k.row, y.display());
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::EvolveImport(a) => {
            let e = evolver(&a.evolve)?;
            anyhow::ensure!(e.storage.is_some(), "evolve-import: give --storage URL or set YOLO_LAB_STORAGE");
            let rows = e.import(&a.from)?;
            println!(
                "evolve-import: {rows} rows of {} loaded into experiment `{}`; continue it with `yolo-lab evolve \
                 --storage URL --name {}`",
                a.from.display(),
                e.name,
                e.name
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::EvolveExport { storage, name, out } => {
            let url = storage_url(storage.as_deref())
                .ok_or_else(|| anyhow::anyhow!("evolve-export: give --storage URL or set YOLO_LAB_STORAGE"))?;
            yolo_lab::evolve::store::join::export(&url, &name, &out)?;
            let rows = yolo_lab::evolve::csv::read(&out.join("evolve.csv"))?.rows.len();
            println!("evolve-export: {rows} rows of experiment `{name}` written to {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::PlotEvolve { path } => {
            let out = path.with_extension("png");
            yolo_lab::results::EvolveResults::load(&path)?.plot_evolve()?.save(&out)?;
            println!("{}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::PlotResults { path } => {
            let out = path.with_extension("png");
            yolo_lab::plots::plot_results(&path)?.save(&out)?;
            println!("{}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Parity { dir } => {
            let report = yolo_lab::parity::run(&dir)?;
            println!("{report}");
            Ok(if report.passed() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Val(a) => {
            let task = match a.task.as_str() {
                "val" => data::Split::Val,
                "test" => data::Split::Test,
                other => anyhow::bail!("--task {other}: expected val or test"),
            };
            let mut v = yolo_lab::val::Validator::new(&a.weights)
                .data(a.data.as_str())
                .imgsz(a.img)
                .batch(a.batch_size)
                .conf_thres(a.conf_thres)
                .iou_thres(a.iou_thres)
                .max_det(a.max_det)
                .task(task)
                .device(a.device.as_str())
                .save_txt(a.save_txt)
                .save_json(a.save_json)
                .project(a.project.clone())
                .name(a.name.as_str())
                .exist_ok(a.exist_ok);
            if let Some(c) = &a.cfg {
                v = v.cfg(c.as_str());
            }
            v.run()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Detect(a) => {
            let mut d = yolo_lab::detect::Detector::new(&a.weights)
                .source(a.source.clone())
                .imgsz(a.img)
                .conf_thres(a.conf_thres)
                .iou_thres(a.iou_thres)
                .max_det(a.max_det)
                .agnostic_nms(a.agnostic_nms)
                .device(a.device.as_str())
                .save_txt(a.save_txt)
                .save_conf(a.save_conf)
                .save_img(!a.nosave)
                .project(a.project.clone())
                .name(a.name.as_str())
                .exist_ok(a.exist_ok);
            if let Some(c) = &a.cfg {
                d = d.cfg(c.as_str());
            }
            if let Some(c) = &a.classes {
                d = d.classes(c.clone());
            }
            d.run()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Half { weights, out } => {
            yolo_lab::train::checkpoint::write_half(&weights, &out)?;
            let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len() as f64 / 1e6).unwrap_or(0.0);
            println!(
                "{} ({:.1} MB) -> {} ({:.1} MB, float16)",
                weights.display(),
                size(&weights),
                out.display(),
                size(&out)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Convert { ckpt, out } => {
            let yaml = yolo_lab::model::convert_checkpoint(&ckpt, &out)?;
            println!("{} -> {} and {}", ckpt.display(), out.display(), yaml.display());
            Ok(ExitCode::SUCCESS)
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

/// The main job on the built-in data: the committed reference model's accuracy and detections on `shapes`, a
/// short fine-tune of it on `shapes-alt`, and a short evolution of that fine-tune.
fn demo(a: &DemoArgs) -> anyhow::Result<()> {
    println!("{}\n", EnvReport::collect());
    let args =
        DataArgs { data: "shapes".into(), hyp: "scratch-low".into(), img: 320, batch: 16, seed: 0, out: a.out.clone() };
    data_summary(&args)?;
    // 1. the reference model (models/reference/README.md): val.py's table and detections with class and score
    let reference = yolo_lab::pretrained::reference_model()?;
    println!("\nreference model: {}", reference.display());
    let report = yolo_lab::val::Validator::new(&reference)
        .data("shapes")
        .imgsz(320)
        .plots(false)
        .project(a.out.clone())
        .name("reference-val")
        .exist_ok(true)
        .run()?;
    println!("{report}");
    let ds = Dataset::named("shapes")?;
    let model = yolo_lab::pretrained::Pretrained::load(&reference, None, None, tch::Device::Cpu)?;
    let images: Vec<_> = ds.scan(Split::Val)?.items.iter().take(8).map(|s| s.image.clone()).collect();
    let found =
        yolo_lab::detect::detect_files(&model.model, &images, &model.names, 320, &yolo_lab::detect::display_nms(0.25))?;
    let p = a.out.join("reference_detections.png");
    yolo_lab::plots::plot_detections(&found)?.save(&p)?;
    println!("detections on 8 validation images (confidence above 0.25) -> {}\n", p.display());
    // 2. transfer: a short fine-tune on the other shapes set (smaller objects, other palette) at 160 px
    let finetune =
        Trainer::new().data("shapes-alt").cfg("yolov5n").weights(&reference).hyp("scratch-low").imgsz(160).batch(16);
    let run = finetune.clone().epochs(a.epochs).project(a.out.clone()).name("finetune").exist_ok(true).fit()?;
    println!("\n{}", yolo_lab::train::results::to_csv(&run.rows));
    yolo_lab::plots::plot_results(run.results_csv())?.save(run.dir.join("results.png"))?;
    println!("run folder: {} (results.png drawn)\n", run.dir.display());
    // 3. a short evolution of the same fine-tune: a few generations of two epochs each
    let mut evolver = Evolver::new(finetune.epochs(2))
        .generations(a.generations)
        .space(|s| s.fix("anchors"))
        .project(a.out.clone())
        .name("evolve")
        .seed(0);
    if a.out.join("evolve/evolve.csv").is_file() {
        evolver = evolver.resume(); // a second `make demo` continues the same evolution instead of starting evolve2
    }
    let evo = evolver.run()?;
    println!("{evo}");
    println!("{}", evo.results()?.summary()?);
    Ok(())
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
        .freeze_bn(a.freeze_bn)
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
        .varifocal(a.varifocal)
        .progress(a.progress.parse()?);
    if let Some(d) = a.depth_multiple {
        t = t.depth_multiple(d);
    }
    if let Some(w) = a.width_multiple {
        t = t.width_multiple(w);
    }
    if !a.weights.is_empty() {
        t = t.weights(&a.weights);
    }
    // only the flags typed on the command line count as asked for (a resume checks them against the run)
    let flag_of = |setting: &str| {
        match setting {
            "batch" => "batch_size",
            "imgsz" => "img",
            other => other,
        }
        .to_string()
    };
    t = t.given_only(|setting| a.given.contains(&flag_of(setting)));
    match a.resume.as_deref() {
        None => {}
        Some("last") => t = t.resume(latest_run(&a.project)?),
        Some(r) => t = t.resume(r),
    }
    Ok(t)
}

/// The most recently written `*/weights/last.safetensors` under a project folder (`--resume` alone).
fn latest_run(project: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let mut best: Option<(std::time::SystemTime, std::path::PathBuf)> = None;
    for e in std::fs::read_dir(project).with_context(|| format!("no runs in {}", project.display()))? {
        let p = e?.path().join("weights/last.safetensors");
        if let Ok(t) = std::fs::metadata(&p).and_then(|m| m.modified())
            && best.as_ref().is_none_or(|(b, _)| t > *b)
        {
            best = Some((t, p));
        }
    }
    best.map(|(_, p)| p)
        .ok_or_else(|| anyhow::anyhow!("no weights/last.safetensors under {} to resume", project.display()))
}

/// `--genes depth_multiple=0.2:0.5,imgsz=64:128,optimizer`: structural genes added to the space.
fn structural_genes(mut space: yolo_lab::evolve::Space, text: &str) -> anyhow::Result<yolo_lab::evolve::Space> {
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (key, range) = item.split_once('=').map_or((item, None), |(k, r)| (k, Some(r)));
        let (lo, hi) = match (key, range) {
            ("optimizer", None) => (0.0, 2.0),
            ("cos_lr", None) => (0.0, 1.0),
            (_, Some(r)) => {
                let (lo, hi) = r.split_once(':').ok_or_else(|| anyhow::anyhow!("--genes `{item}`: expected LO:HI"))?;
                let num = |v: &str| {
                    v.trim().parse::<f64>().map_err(|_| anyhow::anyhow!("--genes `{item}`: `{v}` is not a number"))
                };
                (num(lo)?, num(hi)?)
            }
            (_, None) => anyhow::bail!("--genes `{item}`: give limits as {key}=LO:HI"),
        };
        if !yolo_lab::evolve::structure::is_structural(key) {
            anyhow::bail!(
                "--genes `{key}` is not a structural gene (depth_multiple, width_multiple, imgsz, freeze, optimizer, cos_lr)"
            );
        }
        space = space.structure(key, lo, hi);
    }
    Ok(space)
}

/// The database of `--storage`, else of `YOLO_LAB_STORAGE` (unset or empty: none).
fn storage_url(flag: Option<&str>) -> Option<String> {
    flag.map(str::to_string).or_else(|| std::env::var("YOLO_LAB_STORAGE").ok()).filter(|u| !u.trim().is_empty())
}

/// `yolo-lab evolve` flags to an [`Evolver`]. `--device 0,1` gives one worker per device unless
/// `--evolve-workers` says otherwise; `--resume` continues `--project`/`--name`.
pub fn evolver(a: &EvolveArgs) -> anyhow::Result<Evolver> {
    let mut train = a.train.clone();
    let resume = train.resume.take().is_some();
    let devices: Vec<String> =
        a.train.device.split(',').map(str::trim).filter(|d| !d.is_empty()).map(String::from).collect();
    if devices.len() > 1 {
        train.device = devices[0].clone();
    }
    if train.project == std::path::Path::new("runs/train") {
        train.project = "runs/evolve".into(); // as YOLOv5 (PR #6567)
    }
    let base = trainer(&train)?;
    let workers = if a.evolve_workers == 1 && devices.len() > 1 { devices.len() } else { a.evolve_workers };
    let mut e = Evolver::new(base)
        .generations(a.evolve)
        .workers(workers)
        .seed(a.evolve_seed)
        .evolve_zeros(a.evolve_zeros)
        .prune(a.prune.parse()?)
        .reevaluate(a.reevaluate)
        .project(train.project.clone())
        .name(train.name.as_str())
        .devices(if devices.len() > 1 { devices } else { vec![] });
    if let Some(n) = a.max_failures {
        e = e.max_failures(n);
    }
    if let Some(n) = a.rung_val_images {
        e = e.rung_val_images(n);
    }
    if let Some(g) = &a.genes {
        let space = structural_genes(e.space.clone(), g)?;
        e = e.space(|_| space);
    }
    if !a.fix.is_empty() {
        let keys: Vec<String> = a.fix.iter().map(|k| k.trim().to_string()).collect();
        e = e.space(|s| keys.iter().fold(s, |s, k| s.fix(k)));
    }
    let objectives = a.objectives.split(',').map(Objective::parse).collect::<yolo_lab::Result<Vec<_>>>()?;
    e = e.objectives(objectives);
    if let Some(n) = a.population {
        e = e.algorithm(Ga::Population(PopulationSettings { size: n, ..Default::default() }));
    }
    if resume {
        e = e.resume();
    }
    if let Some(url) = storage_url(a.storage.as_deref()) {
        e = e.storage(url).heartbeat_grace(a.grace);
    }
    let flag_of = |setting: &str| {
        match setting {
            "seed" => "evolve_seed",
            "algorithm" => "population",
            "generations" => "evolve",
            "workers" => "evolve_workers",
            "prune" | "max_failures" | "rung_val_images" | "reevaluate" | "objectives" => setting,
            "space" if a.train.given.iter().any(|g| g == "fix") => "fix",
            "space" => "genes",
            other => other,
        }
        .to_string()
    };
    Ok(e.given_only(|setting| a.train.given.contains(&flag_of(setting))))
}
