//! Data sets: parsing, verification of good and corrupt files, the registry, shapes generation, VOC conversion.

mod common;

use common::{write_shapes, write_yaml};
use std::path::Path;
use yolo_lab::Error;
use yolo_lab::data::{Dataset, IssueKind, Registry, ShapesConfig, ShapesStyle, Split, convert_voc, label_path_for};

#[test]
fn yaml_with_folder_list_and_txt() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_shapes(root, "a", 3, 64);
    write_shapes(root, "b", 2, 64);
    std::fs::write(root.join("val.txt"), "./images/a/img000.jpg\n./images/b/img001.jpg\n\n").unwrap();
    let y = write_yaml(
        root,
        "train: [images/a, images/b]\nval: val.txt\nnames:\n  0: circle\n  1: rectangle\n  2: triangle\n",
    );
    let ds = Dataset::from_yaml(&y).unwrap();
    assert_eq!(ds.names, ["circle", "rectangle", "triangle"]);
    assert_eq!(ds.scan(Split::Train).unwrap().len(), 5);
    let val = ds.scan(Split::Val).unwrap();
    assert_eq!(val.len(), 2);
    assert!(val.items[0].image.ends_with("images/a/img000.jpg"));
    assert!(matches!(ds.scan(Split::Test), Err(Error::DataConfig { .. })));
}

#[test]
fn yaml_errors_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_shapes(root, "a", 1, 64);
    let y = write_yaml(root, "train: images/a\nval: images/a\nnc: 2\nnames: [x, y, z]\n");
    let msg = Dataset::from_yaml(&y).unwrap_err().to_string();
    assert!(msg.contains("data.yaml") && msg.contains("`nc` is 2"), "{msg}");
    let y = write_yaml(root, "train: images/missing\nval: images/a\nnames: [x]\n");
    let msg = Dataset::from_yaml(&y).unwrap_err().to_string();
    assert!(msg.contains("images/missing") && msg.contains("does not exist"), "{msg}");
    let y = write_yaml(root, "train: images/a\nval: images/a\n");
    assert!(Dataset::from_yaml(&y).unwrap_err().to_string().contains("`names` is missing"));
    let y = write_yaml(root, "train: images/a\nval: images/a\nnc: 3\n");
    assert_eq!(Dataset::from_yaml(&y).unwrap().names, ["class0", "class1", "class2"]);
}

/// Good and corrupt files side by side: each corrupt one is reported with its file (and line) and skipped.
#[test]
fn scan_reports_and_skips_corrupt_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let imgs = write_shapes(root, "train", 9, 96);
    let lbl = |i: usize| label_path_for(&imgs[i]);
    std::fs::write(lbl(1), "0 0.5 0.5 0.2\n").unwrap(); // 4 columns
    std::fs::write(lbl(2), "0 0.5 0.5 0.2 0.2\n1 1.2 0.5 0.2 0.2\n").unwrap(); // coordinate above 1 on line 2
    std::fs::write(lbl(3), "").unwrap(); // empty: a background image
    std::fs::remove_file(lbl(4)).unwrap(); // missing: a background image
    std::fs::write(lbl(5), "2 0.5 0.5 0.2 0.2\n2 0.5 0.5 0.2 0.2\n").unwrap(); // duplicate row
    std::fs::write(lbl(6), "7 0.5 0.5 0.2 0.2\n").unwrap(); // class outside the names
    std::fs::write(&imgs[7], b"this is not a jpeg").unwrap(); // undecodable
    // a JPEG without its end marker that still decodes completely: used, and never rewritten (issue 10.2)
    let full = std::fs::read(&imgs[8]).unwrap();
    std::fs::write(&imgs[8], &full[..full.len() - 2]).unwrap();

    let y = write_yaml(root, "train: images/train\nval: images/train\nnames: [circle, rectangle, triangle]\n");
    let s = Dataset::from_yaml(&y).unwrap().scan(Split::Train).unwrap();
    let r = &s.report;
    let issue = |needle: &str| {
        r.issues
            .iter()
            .find(|i| i.message.contains(needle))
            .unwrap_or_else(|| panic!("no issue `{needle}` in {:#?}", r.issues))
    };

    let four = issue("5 columns");
    assert_eq!((four.path.clone(), four.line, four.kind), (lbl(1), Some(1), IssueKind::Skipped));
    let big = issue("out of bounds");
    assert_eq!((big.path.clone(), big.line), (lbl(2), Some(2)));
    assert_eq!(issue("exceeds").path, lbl(6));
    assert_eq!(issue("cannot decode").path, imgs[7]);
    assert_eq!(issue("duplicate").kind, IssueKind::Fixed);
    let truncated = r.issues.iter().find(|i| i.path == imgs[8]).expect("the truncated JPEG is reported");
    assert!(truncated.message.contains("used as decoded") && truncated.message.contains("left unchanged"));
    assert_eq!(truncated.kind, IssueKind::Fixed);
    assert_eq!(std::fs::read(&imgs[8]).unwrap(), &full[..full.len() - 2], "the user's file is not rewritten");

    assert_eq!((r.corrupt, r.empty, r.missing), (4, 1, 1));
    assert_eq!(s.len(), 5);
    assert!(!s.items.iter().any(|it| it.image == imgs[1] || it.image == imgs[7]));
    let dup = s.items.iter().find(|it| it.image == imgs[5]).unwrap();
    assert_eq!(dup.labels.len(), 1);
    assert!(r.to_string().contains("5 images, 2 backgrounds, 4 corrupt"), "{r}");

    // the second scan comes from the label cache and agrees
    let again = Dataset::from_yaml(&y).unwrap().scan(Split::Train).unwrap();
    assert!(again.report.from_cache);
    assert_eq!(again.items, s.items);
    // touching a label invalidates it
    std::fs::write(lbl(1), "0 0.5 0.5 0.2 0.2\n").unwrap();
    let third = Dataset::from_yaml(&y).unwrap().scan(Split::Train).unwrap();
    assert!(!third.report.from_cache);
    assert_eq!(third.len(), 6);
}

#[test]
fn polygon_labels_become_boxes() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = write_shapes(dir.path(), "train", 1, 64);
    std::fs::write(label_path_for(&imgs[0]), "1 0.1 0.2 0.5 0.2 0.5 0.6 0.1 0.6\n").unwrap();
    let y = write_yaml(dir.path(), "train: images/train\nval: images/train\nnames: [a, b]\n");
    let s = Dataset::from_yaml(&y).unwrap().scan(Split::Train).unwrap();
    let l = s.items[0].labels[0];
    assert_eq!(l.class, 1);
    assert!(
        (l.cx - 0.3).abs() < 1e-6 && (l.cy - 0.4).abs() < 1e-6 && (l.w - 0.4).abs() < 1e-6 && (l.h - 0.4).abs() < 1e-6
    );
}

#[test]
fn no_usable_images_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = write_shapes(dir.path(), "train", 2, 64);
    for p in &imgs {
        std::fs::write(p, b"garbage").unwrap();
    }
    let y = write_yaml(dir.path(), "train: images/train\nval: images/train\nnames: [a, b, c]\n");
    let e = Dataset::from_yaml(&y).unwrap().scan(Split::Train).unwrap_err();
    assert!(matches!(e, Error::NoImages { .. }), "{e}");
    assert!(e.to_string().contains("2 corrupt"), "{e}");
}

#[test]
fn registry_names_and_unknown_name() {
    let reg = Registry::load().unwrap();
    for n in ["shapes", "shapes-tiny", "shapes-alt", "coco128", "VOC"] {
        assert!(reg.names().contains(&n), "{n}");
    }
    let e = Dataset::named("imagenet-22k").unwrap_err().to_string();
    assert!(e.contains("imagenet-22k") && e.contains("shapes"), "{e}");
    assert!(reg.download_note("coco128").unwrap().contains("coco128.zip"));
}

#[test]
fn registry_entry_on_disk_says_how_to_obtain_it() {
    let mut reg = Registry::default();
    let dir = tempfile::tempdir().unwrap();
    reg.add_text("[far]\nroot = \"nowhere\"\ntrain = \"images/train\"\nval = \"images/val\"\nnames = \"coco\"\ndownload = \"ask Bob\"\n", &dir.path().join("datasets.toml"))
        .unwrap();
    let e = reg.dataset("far").unwrap_err().to_string();
    assert!(e.contains("nowhere") && e.contains("ask Bob"), "{e}");
    let bad = reg.add_text("[x]\nroots = 1\n", Path::new("my.toml")).unwrap_err().to_string();
    assert!(bad.contains("my.toml") && bad.contains("roots"), "{bad}");
}

#[test]
fn shapes_tiny_from_registry() {
    let ds = Dataset::named("shapes-tiny").unwrap();
    assert_eq!(ds.nc(), 3);
    let train = ds.scan(Split::Train).unwrap();
    assert_eq!(train.len(), 8);
    assert!(train.report.instances >= 8);
    assert_eq!(ds.scan(Split::Val).unwrap().len(), 8);
}

#[test]
fn concurrent_generation_never_shows_half_a_set() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ShapesConfig { seed: 99, train: 12, val: 4, imgsz: 64, style: ShapesStyle::Alt };
    let sets: Vec<Dataset> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4).map(|_| s.spawn(|| cfg.generate_in(dir.path()).unwrap())).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(sets.windows(2).all(|w| w[0] == w[1]));
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(entries.len(), 1, "temporary folders removed: {entries:?}");
    assert_eq!(sets[0].scan(Split::Train).unwrap().len(), 12);
    // deterministic: regenerating elsewhere gives identical bytes
    let other = tempfile::tempdir().unwrap();
    let again = cfg.generate_in(other.path()).unwrap();
    let a = std::fs::read(sets[0].root.join("images/train/train_00003.jpg")).unwrap();
    let b = std::fs::read(again.root.join("images/train/train_00003.jpg")).unwrap();
    assert_eq!(a, b);
}

fn voc_xml(w: u32, h: u32, objects: &[(&str, bool, [u32; 4])]) -> String {
    let objs: String = objects
        .iter()
        .map(|(n, d, b)| {
            format!(
                "<object><name>{n}</name><difficult>{}</difficult><bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox></object>",
                u8::from(*d),
                b[0],
                b[1],
                b[2],
                b[3]
            )
        })
        .collect();
    format!("<annotation><size><width>{w}</width><height>{h}</height><depth>3</depth></size>{objs}</annotation>")
}

#[test]
fn voc_conversion_and_splits() {
    let dir = tempfile::tempdir().unwrap();
    let devkit = dir.path().join("VOCdevkit");
    let mut id = 0;
    for (year, sets) in [("2007", vec!["train", "val", "test"]), ("2012", vec!["train", "val"])] {
        let base = devkit.join(format!("VOC{year}"));
        for d in ["Annotations", "ImageSets/Main", "JPEGImages"] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        for set in sets {
            let ids: Vec<String> = (0..2)
                .map(|_| {
                    id += 1;
                    format!("{year}_{id:06}")
                })
                .collect();
            for i in &ids {
                yolo_lab::data::Image::from_pixel(100, 50, image::Rgb([10, 20, 30]))
                    .save(base.join("JPEGImages").join(format!("{i}.jpg")))
                    .unwrap();
                let xml = voc_xml(
                    100,
                    50,
                    &[
                        ("dog", false, [11, 11, 31, 41]),
                        ("cat", true, [1, 1, 20, 20]),
                        ("person", false, [50, 5, 90, 45]),
                    ],
                );
                std::fs::write(base.join("Annotations").join(format!("{i}.xml")), xml).unwrap();
            }
            std::fs::write(base.join("ImageSets/Main").join(format!("{set}.txt")), ids.join("\n") + "\n").unwrap();
        }
    }
    let out = dir.path().join("VOC");
    assert_eq!(convert_voc(&devkit, &out, &yolo_lab::report::Reporter::default()).unwrap(), 10);
    let toml = "[voc-test]\nroot = \"VOC\"\ntrain = [\"images/train2012\", \"images/train2007\", \"images/val2012\", \"images/val2007\"]\nval = \"images/test2007\"\nnames = \"voc\"\n";
    let mut reg = Registry::default();
    reg.add_text(toml, &dir.path().join("datasets.toml")).unwrap();
    let ds = reg.dataset("voc-test").unwrap();
    assert_eq!(ds.nc(), 20);
    let train = ds.scan(Split::Train).unwrap();
    let val = ds.scan(Split::Val).unwrap();
    assert_eq!((train.len(), val.len()), (8, 2));
    let labels = &train.items[0].labels;
    assert_eq!(labels.len(), 2, "the difficult cat is skipped");
    assert_eq!((labels[0].class, labels[1].class), (11, 14));
    assert!((labels[0].cx - 0.20).abs() < 1e-6 && (labels[0].cy - 0.50).abs() < 1e-6);
    assert!(matches!(
        convert_voc(&dir.path().join("empty"), &out, &yolo_lab::report::Reporter::default()),
        Err(Error::NoImages { .. })
    ));
}

/// Issue 10.2: a JPEG cut in half is skipped with a message saying so (its labels would point at grey), and
/// neither `scan` nor the loader writes to it.
#[test]
fn a_half_jpeg_is_skipped_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = write_shapes(dir.path(), "train", 2, 96);
    // a detailed picture, so that no bottom row is flat by itself
    let noise = image::RgbImage::from_fn(96, 96, |x, y| {
        image::Rgb([(x * 7 % 251) as u8, (y * 13 % 241) as u8, ((x ^ y) * 3) as u8])
    });
    noise.save(&imgs[1]).unwrap();
    let full = std::fs::read(&imgs[1]).unwrap();
    let half = &full[..full.len() / 2];
    std::fs::write(&imgs[1], half).unwrap();
    let y = write_yaml(dir.path(), "train: images/train\nval: images/train\nnames: [circle, rectangle, triangle]\n");
    let s = Dataset::from_yaml(&y).unwrap().scan(Split::Train).unwrap();
    let issue = s.report.issues.iter().find(|i| i.path == imgs[1]).expect("reported");
    assert_eq!(issue.kind, IssueKind::Skipped);
    assert!(issue.message.contains("truncated JPEG") && issue.message.contains("left unchanged"), "{issue:?}");
    assert_eq!(s.len(), 1);
    assert_eq!(std::fs::read(&imgs[1]).unwrap(), half, "the user's file is not rewritten");
}

/// Issue 10.5: a FIFO named like an image (or a label) is reported and skipped instead of hanging the scan.
#[test]
fn a_fifo_named_jpg_does_not_hang_the_scan() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = write_shapes(dir.path(), "train", 2, 64);
    let fifo = imgs[0].with_file_name("pipe.jpg");
    let label_fifo = label_path_for(&imgs[1]);
    std::fs::remove_file(&label_fifo).unwrap();
    for p in [&fifo, &label_fifo] {
        assert!(std::process::Command::new("mkfifo").arg(p).status().unwrap().success());
    }
    let y = write_yaml(dir.path(), "train: images/train\nval: images/train\nnames: [circle, rectangle, triangle]\n");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(Dataset::from_yaml(&y).unwrap().scan(Split::Train));
    });
    let s = rx.recv_timeout(std::time::Duration::from_secs(60)).expect("the scan finished").unwrap();
    let reported = |p: &Path| s.report.issues.iter().any(|i| i.path == p && i.message.contains("not a regular file"));
    assert!(reported(&fifo) && reported(&label_fifo), "{:#?}", s.report.issues);
    assert_eq!(s.len(), 1);
}

/// Issue 10.5: a label edited without changing its size or modification time is not served from the cache.
#[test]
fn a_label_edited_in_place_invalidates_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = write_shapes(dir.path(), "train", 2, 64);
    let lp = label_path_for(&imgs[0]);
    std::fs::write(&lp, "0 0.5 0.5 0.2 0.2\n").unwrap();
    let mtime = std::fs::metadata(&lp).unwrap().modified().unwrap();
    let y = write_yaml(dir.path(), "train: images/train\nval: images/train\nnames: [circle, rectangle, triangle]\n");
    let first = Dataset::from_yaml(&y).unwrap().scan(Split::Train).unwrap();
    assert_eq!(first.items[0].labels[0].class, 0);
    std::fs::write(&lp, "2 0.5 0.5 0.2 0.2\n").unwrap(); // same size
    std::fs::File::options().write(true).open(&lp).unwrap().set_modified(mtime).unwrap();
    let second = Dataset::from_yaml(&y).unwrap().scan(Split::Train).unwrap();
    assert!(!second.report.from_cache);
    assert_eq!(second.items[0].labels[0].class, 2);
}

/// Issue 10.5: a data yaml path that does not exist is reported as a missing file, not an unknown set name.
#[test]
fn a_missing_data_yaml_is_a_missing_file() {
    for p in ["nowhere/data.yaml", "data.yaml"] {
        let e = Dataset::load(p).unwrap_err().to_string();
        assert!(e.contains(p) && e.contains("No such file"), "{e}");
        assert!(!e.contains("unknown data set"), "{e}");
    }
}
