#!/usr/bin/env python3
"""Write notebooks/*.ipynb from the cell sources below (outputs empty; `make notebooks-full` fills them).

The notebooks are the product; this file only keeps their text in one reviewable place. Edit here, run
`python3 scripts/notebook_sources.py`, then execute the notebooks it names with `scripts/run_notebooks.py --write`.

    python3 scripts/notebook_sources.py          rewrite only notebooks whose cell text changed (others keep outputs)
    python3 scripts/notebook_sources.py 04 05    rewrite these (outputs cleared) whatever changed
"""
import json, pathlib, sys

DEP = ':dep yolo-lab = { path = ".." }\nuse yolo_lab::prelude::*;'
DEP_NOTE = ("The first cell compiles yolo-lab and its dependencies (libtorch bindings, polars, plotters) inside the "
            "kernel: **the first run takes several minutes**; later runs reuse the build. Every later cell is quick "
            "to compile. `YOLO_LAB_QUICK=1` in the environment shrinks every run (that is how CI executes these "
            "notebooks); the committed outputs come from the full settings.")

NOTEBOOKS = {
"01-quickstart": [
("md", "# yolo-lab quick start\n\nFrom a data set to a trained YOLOv5 detector in a few cells: the built-in "
       "`shapes` data set, the model summary, training, the metrics, the results plot and detections on "
       "validation images.\n\n" + DEP_NOTE),
("code", DEP),
("md", "## The data\n\n`shapes` is generated on first use (circles, rectangles and triangles on varied backgrounds; "
       "3 classes) so that everything here runs without downloads. Scanning verifies every image and label the way "
       "YOLOv5 does and caches the result."),
("code", 'let quick = std::env::var("YOLO_LAB_QUICK").is_ok();\nlet ds = Dataset::named(if quick { "shapes-tiny" } else { "shapes" }).unwrap();\nlet train = ds.scan(Split::Train).unwrap();\nlet val = ds.scan(Split::Val).unwrap();\nprintln!("{}\\n{}", train.report, val.report);'),
("md", "A training batch as the loader builds it: 4-image mosaics, random perspective, HSV jitter and flips, "
       "each drawn from `hyp.scratch-low.yaml`. The boxes are the targets the loss sees."),
("code", 'let loader = Loader::new(&train, &Hyp::load("scratch-low").unwrap(), LoaderConfig { img_size: 320, batch: 8, workers: 0, ..Default::default() }).unwrap();\nlet batch = loader.batch(0, 0).unwrap();\nlet grid: yolo_lab::data::Image = yolo_lab::data::batch_grid(&batch);\nFigure { png: yolo_lab::data::png_bytes(&grid), width: grid.width(), height: grid.height(), title: "training batch".into() }'),
("md", "## The model\n\nyolov5n with 3 classes. The table is YOLOv5's: module index, inputs, repeats, parameters. The "
       "names of the variables are PyTorch's `state_dict` names, so `freeze(10)` means the same modules as "
       "`train.py --freeze 10`."),
("code", 'Yolo::new("yolov5n", Some(3), yolo_lab::tch::Device::Cpu).unwrap().summary(320)'),
("md", "## Training\n\nYOLOv5's loop: warmup of learning rate and momentum, gradient accumulation to a nominal batch of "
       "64, gradient clipping, an exponential moving average of the weights (used for validation), validation "
       "after every epoch. Progress lines stream while the cell runs."),
("code", 'let run = Trainer::new()\n    .data(ds.clone())\n    .cfg("yolov5n")\n    .hyp("scratch-low")\n    .imgsz(if quick { 64 } else { 320 })\n    .batch(16)\n    .epochs(if quick { 1 } else { 20 })\n    .log_every(8)\n    .project("runs/nb01")\n    .name("train")\n    .exist_ok(true)\n    .fit()\n    .unwrap();\nrun'),
("md", "## Results\n\nThe same panels as YOLOv5's `results.png`: losses, precision, recall and mAP per epoch, with a "
       "smoothed trend (red dots). A from-scratch yolov5n on 256 images learns slowly at first: YOLOv5 itself reaches "
       "mAP@0.5 ≈ 0.04 after 30 epochs on a comparable set, and a 100-epoch schedule gets much further (see the README)."),
("code", 'yolo_lab::plots::plot_results(run.results_csv()).unwrap()'),
("md", "The epochs as a polars DataFrame, for your own analysis:"),
("code", 'Table(run.metrics_df().unwrap())'),
("md", "## Detections\n\nThe best weights (EMA) on validation images, confidence above 0.1."),
("code", 'let mut model = Yolo::new("yolov5n", Some(3), yolo_lab::tch::Device::Cpu).unwrap();\nmodel.load(run.best_weights.clone().expect("best weights")).unwrap();\nlet images: Vec<_> = val.items.iter().take(8).map(|s| s.image.clone()).collect();\nyolo_lab::plots::plot_detections(&model, &images, &ds.names, 320, 0.1).unwrap()'),
],
"02-hyperparameter-evolution": [
("md", "# Hyperparameter evolution\n\nYOLOv5 tunes its ~30 training hyperparameters with a genetic algorithm: train, "
       "score, mutate the best, repeat. This notebook walks through the method on `shapes`.\n\n" + DEP_NOTE),
("code", DEP),
("md", "## 1. Initialise hyperparameters\n\nEvolution starts from a hyp file. Here it is YOLOv5's default for training "
       "small models from scratch. Every value is a gene; `anchors` is added (3 per level) so that anchor counts "
       "can evolve too."),
("code", 'let hyp = Hyp::load("scratch-low").unwrap();\nprint!("{}", hyp.to_yaml_string());'),
("md", "## 2. Define fitness\n\nFitness is what the evolution maximises. YOLOv5's choice is `0.1·mAP@0.5 + 0.9·mAP@0.5:0.95`: "
       "mostly the stricter metric, because it rewards well-placed boxes. `.fitness([..])` changes the weights, "
       "`.fitness_fn(..)` takes any function of the 7 results."),
("code", 'yolo_lab::metrics::FITNESS_WEIGHTS'),
("md", "## 3. Evolve\n\nEach generation picks a parent among the 5 best rows so far (weighted by fitness), multiplies "
       "each gene by a random factor (probability 0.8, sigma 0.2, clipped to ×0.3…×3), clamps to the limits of "
       "the search space, trains, and appends a row to `evolve.csv`. The file is the whole state: a stopped "
       "evolution resumes from it. Real evolutions use 300 generations of the full scenario; this one is tiny."),
("code", 'let quick = std::env::var("YOLO_LAB_QUICK").is_ok();\nlet base = Trainer::new().data(if quick { "shapes-tiny" } else { "shapes" }).cfg("yolov5n").imgsz(if quick { 64 } else { 160 }).batch(16).epochs(if quick { 1 } else { 3 });\nlet evo = Evolver::new(base)\n    .generations(if quick { 2 } else { 12 })\n    .space(|s| s.fix("anchors"))\n    .seed(0)\n    .project("runs/nb02")\n    .name("evolve")\n    .run()\n    .unwrap();\nprintln!("{evo}");'),
("md", "## 4. Visualise\n\nYOLOv5's `evolve.png`: one panel per hyperparameter, its value against fitness; colour shows "
       "how many generations landed there, the cross marks the best. A vertical line means the gene never moved "
       "(gain 0, or a value of 0 that multiplication cannot move)."),
("code", 'let results = evo.results().unwrap();\nresults.plot_evolve().unwrap()'),
("code", 'results'),
("md", "## 5. Use the evolved hyperparameters\n\n`hyp_evolve.yaml` holds the best row; train with it like any hyp file."),
("code", 'let best = evo.best_hyp().unwrap();\nlet run = Trainer::new().data(if quick { "shapes-tiny" } else { "shapes" }).hyp(best).imgsz(if quick { 64 } else { 160 }).batch(16).epochs(if quick { 1 } else { 3 }).project("runs/nb02").name("evolved").exist_ok(true).progress(ProgressMode::Quiet).fit().unwrap();\nrun'),
],
"03-exploring-evolve-csv": [
("md", "# Exploring evolve.csv\n\n`evolve.csv` pads every cell to 20 characters, which trips most CSV readers; "
       "`EvolveResults` trims it and hands you a polars DataFrame with clean names, Float64 columns, and added "
       "`generation` and `fitness` columns. The file here was written by YOLOv5 itself.\n\n" + DEP_NOTE),
("code", DEP),
("code", 'let r = EvolveResults::load("data/yolov5-evolve-sample/evolve.csv").unwrap();\nr'),
("md", "## polars queries\n\nThe ten fittest rows, and the rows where mosaic was below 0.5:"),
("code", 'use yolo_lab::polars::prelude::*;\nlet df = r.df().unwrap();\nlet best10 = df.sort(["fitness"], SortMultipleOptions::default().with_order_descending(true)).unwrap().head(Some(10));\nTable(best10.select(["generation", "fitness", "metrics/mAP_0.5", "mosaic", "mixup", "scale"]).unwrap())'),
("code", 'let low_mosaic = df.filter(&df.column("mosaic").unwrap().as_materialized_series().lt(0.5).unwrap()).unwrap();\nprintln!("{} of {} rows have mosaic < 0.5; their mean fitness is {:.5} against {:.5} overall", low_mosaic.height(), df.height(), low_mosaic.column("fitness").unwrap().f64().unwrap().mean().unwrap(), df.column("fitness").unwrap().f64().unwrap().mean().unwrap());'),
("md", "## Per-hyperparameter summary\n\nBest value, mean, spread, and whether the gene ever changed."),
("code", 'Table(r.summary().unwrap())'),
("md", "## Which hyperparameters matter?\n\nSpearman's ρ measures monotone effects (more mosaic → better). Evolution "
       "often finds optima *inside* a range, which a rank correlation misses; η² of the fitness ranks across "
       "quantile bins of the hyperparameter sees those too, and ranks make it robust to outlier runs."),
("code", 'Table(r.importance().unwrap())'),
("code", 'r.plot_importance().unwrap()'),
("md", "## YOLOv5's evolve.png, and the best rows in parallel coordinates"),
("code", 'r.plot_evolve().unwrap()'),
("code", 'r.plot_parallel(15).unwrap()'),
("md", "## Export the best hyperparameters\n\nThe same `hyp_evolve.yaml` YOLOv5 writes, ready for `Trainer::hyp(path)`."),
("code", 'std::fs::create_dir_all("runs/nb03").unwrap();\nr.save_best_yaml("runs/nb03/hyp_evolve.yaml").unwrap();\nprint!("{}", std::fs::read_to_string("runs/nb03/hyp_evolve.yaml").unwrap());'),
],
"04-freeze-transfer-learning": [
("md", "# Freezing layers for transfer learning\n\nYOLOv5's tutorial fine-tunes yolov5m from COCO weights on Pascal "
       "VOC three ways: everything trainable, the backbone frozen (`--freeze 10`), everything but the Detect convs "
       "frozen (`--freeze 24`), and compares accuracy, speed and GPU load. The recipe on a GPU:\n\n"
       "```rust\nFreezeStudy::new(Trainer::new().data(\"VOC\").weights(\"yolov5m.safetensors\").hyp(\"VOC\").imgsz(512).epochs(50).batch(48))\n```\n\n"
       "This notebook runs the same study at CPU size: pretrain yolov5n on `shapes`, then fine-tune on a "
       "*different* shapes set (`shapes-alt`: smaller objects, other colours and backgrounds).\n\n" + DEP_NOTE),
("code", DEP),
("md", "## Pretraining\n\nThe source task: 60 epochs from scratch at 160 px (about 8 minutes on two CPU cores). Its best "
       "weights play the role of the COCO checkpoint; when they exist, re-running the cell reuses them."),
("code", 'let quick = std::env::var("YOLO_LAB_QUICK").is_ok();\nlet (size, pre_epochs, epochs): (i64, usize, usize) = if quick { (64, 1, 1) } else { (160, 60, 12) };\nlet pre = Trainer::new().data(if quick { "shapes-tiny" } else { "shapes" }).cfg("yolov5n").imgsz(size).batch(16).epochs(pre_epochs).project("runs/nb04").name("pretrain").exist_ok(true).progress(ProgressMode::Quiet);\nlet pretrained = match std::path::Path::new("runs/nb04/pretrain/weights/best.safetensors") { p if p.is_file() && !quick => p.to_path_buf(), _ => pre.fit().unwrap().best_weights.unwrap() };\nprintln!("pretrained weights: {}", pretrained.display());'),
("md", "## The study\n\nSame data, seed and epochs for every variant; only the frozen modules differ. Frozen "
       "parameters get no gradient, but their BatchNorm statistics keep updating, as in YOLOv5. Finished variants "
       "are loaded from their folders instead of retrained, so re-running this cell is cheap."),
("code", 'let base = Trainer::new().data(if quick { "shapes-tiny" } else { "shapes-alt" }).cfg("yolov5n").weights(&pretrained).imgsz(size).batch(16).epochs(epochs).progress(ProgressMode::Quiet);\nlet study = FreezeStudy::new(base.clone())\n    .variants([Freeze::None, Freeze::Backbone, Freeze::AllButDetect])\n    .dir(if quick { "runs/nb04/study-quick" } else { "runs/nb04/study" })\n    .run()\n    .unwrap();\nstudy'),
("md", "What to look for: frozen variants train faster per image (no gradients for the frozen weights) and, on a "
       "GPU, need less memory; on a CPU the process memory barely moves. The more is frozen, the less the model can "
       "adapt to the new look of the data, and the shapes source task is a weak stand-in for COCO, so here training "
       "everything wins clearly. YOLOv5's VOC study found the same order with a smaller gap: freezing saves time and "
       "memory, training everything gives the best accuracy.\n\n"
       "## A staged schedule\n\nAnother strategy (seed 003): train normally first, then freeze and fine-tune on a random "
       "half of the data, then a last frozen stage on all data with the learning rate divided by 10."),
("code", 'let schedule = FreezeSchedule::seed003(if quick { 1 } else { 4 }, if quick { 1 } else { 4 }, if quick { 1 } else { 4 }, Freeze::Backbone);\nlet staged = base.clone().freeze_schedule(schedule).project("runs/nb04").name(if quick { "staged-quick" } else { "staged" }).exist_ok(true).fit().unwrap();\nstaged'),
],
"05-hyperparameters-explained": [
("md", "# What each hyperparameter does\n\nA tour of YOLOv5's hyperparameters with pictures: the augmentations "
       "applied to real training images, the learning-rate schedule, and the loss gains.\n\n" + DEP_NOTE),
("code", DEP),
("md", "`show` draws four training images as the loader augments them with a given hyp, boxes included. "
       "(Notebook functions are `fn` items: evcxr keeps those across cells, closures it cannot.)"),
("code", 'fn show(train: &Samples, hyp: &Hyp, title: &str) -> Figure {\n    let loader = Loader::new(train, hyp, LoaderConfig { img_size: 128, batch: 4, workers: 0, ..Default::default() }).unwrap();\n    let mut imgs = Vec::new();\n    for k in 0..4 {\n        let item = loader.item(k, 0).unwrap();\n        let mut im = item.image.clone();\n        let (w, h) = (im.width() as f32, im.height() as f32);\n        for l in &item.labels {\n            let b = [(l[1] - l[3] / 2.0) * w, (l[2] - l[4] / 2.0) * h, (l[1] + l[3] / 2.0) * w, (l[2] + l[4] / 2.0) * h];\n            yolo_lab::data::draw_box(&mut im, b, yolo_lab::data::class_colour(l[0] as usize), 1);\n        }\n        imgs.push(im);\n    }\n    yolo_lab::plots::image_grid(&imgs, &vec![title.to_string(); 4], 4).unwrap()\n}'),
("code", 'let ds = Dataset::named("shapes-tiny").unwrap();\nlet train = ds.scan(Split::Train).unwrap();\nlet none = Hyp::load("no-augmentation").unwrap();\nshow(&train, &none, "no augmentation")'),
("md", "## Mosaic\n\n`mosaic` is the probability of stitching 4 images around a random centre. The model sees objects "
       "at more scales and positions, cut at image borders, with more objects per image. It is the strongest "
       "augmentation of YOLOv5."),
("code", 'let mut h = none.clone();\nh.set("mosaic", 1.0).unwrap();\nshow(&train, &h, "mosaic 1.0")'),
("md", "## HSV\n\n`hsv_h`, `hsv_s`, `hsv_v` jitter hue, saturation and brightness by random gains up to ± the value. "
       "Colour is rarely what defines a class, so this teaches the model to ignore it."),
("code", 'let mut h = none.clone();\nfor (k, v) in [("hsv_h", 0.1), ("hsv_s", 0.9), ("hsv_v", 0.9)] { h.set(k, v).unwrap(); }\nshow(&train, &h, "strong HSV")'),
("md", "## Geometry: perspective\n\n`degrees`, `translate`, `scale`, `shear`, `perspective` form one random "
       "transform; boxes follow their corners and are dropped when too small or mostly cut away."),
("code", 'let mut h = none.clone();\nfor (k, v) in [("degrees", 30.0), ("translate", 0.2), ("scale", 0.5), ("shear", 10.0), ("perspective", 0.0005)] { h.set(k, v).unwrap(); }\nshow(&train, &h, "rotate, shift, zoom, shear")'),
("md", "## Flips\n\n`fliplr` and `flipud` are probabilities. Left-right flips are safe for most scenes; up-down "
       "flips only where there is no natural 'up' (aerial images, microscopy)."),
("code", 'let mut h = none.clone();\nh.set("fliplr", 1.0).unwrap();\nh.set("flipud", 1.0).unwrap();\nshow(&train, &h, "both flips")'),
("md", "## The learning-rate schedule\n\nDuring warmup (`warmup_epochs`, at least 100 iterations) the bias learning rate "
       "falls from `warmup_bias_lr` while the others rise from 0, and momentum rises from `warmup_momentum`. Then "
       "the rate decays linearly to `lr0·lrf` (or along a cosine with `cos_lr`)."),
("code", 'yolo_lab::plots::plot_schedule(&Hyp::load("scratch-low").unwrap(), 30, 16, false).unwrap()'),
("md", "## Loss gains\n\n`box`, `obj` and `cls` weigh the three loss terms; train.py rescales them for the number "
       "of detection layers, the number of classes and the image size, as this table shows for shapes at 320 px. "
       "`cls_pw`, `obj_pw` weigh positives inside the BCE terms, `fl_gamma > 0` turns on focal loss, `anchor_t` "
       "is how different a box may be from an anchor and still be assigned to it."),
("code", 'let h = Hyp::load("scratch-low").unwrap();\nlet c = yolo_lab::loss::LossConfig::from_hyp(&h, 3, 3, 320, 0.0);\nprintln!("box {} -> {}\\ncls {} -> {} (x nc/80)\\nobj {} -> {} (x (320/640)^2)", h.box_, c.box_gain, h.cls, c.cls_gain, h.obj, c.obj_gain);'),
],
}

def cell(kind, src, ident):
    lines = src.split("\n")
    source = [l + "\n" for l in lines[:-1]] + [lines[-1]]
    if kind == "md":
        return {"cell_type": "markdown", "id": ident, "metadata": {}, "source": source}
    return {"cell_type": "code", "execution_count": None, "id": ident, "metadata": {}, "outputs": [], "source": source}

def main():
    out = pathlib.Path(__file__).resolve().parent.parent / "notebooks"
    named = sys.argv[1:]
    for name, cells in NOTEBOOKS.items():
        path = out / f"{name}.ipynb"
        if named and not any(name.startswith(a) for a in named):
            continue
        if not named and path.is_file():
            old = json.loads(path.read_text())
            if [(c["cell_type"], "".join(c["source"])) for c in old["cells"]] == \
                    [("markdown" if k == "md" else "code", s) for k, s in cells]:
                continue
        nb = {
            "cells": [cell(k, s, f"c{i:02d}") for i, (k, s) in enumerate(cells)],
            "metadata": {
                "kernelspec": {"display_name": "Rust", "language": "rust", "name": "rust"},
                "language_info": {"codemirror_mode": "rust", "file_extension": ".rs", "mimetype": "text/rust", "name": "Rust", "pygment_lexer": "rust", "version": ""},
            },
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        path.write_text(json.dumps(nb, indent=1) + "\n")
        print(f"{path} (outputs cleared: run scripts/run_notebooks.py --write {name[:2]})")

if __name__ == "__main__":
    main()
