//! Training-step throughput on the CPU: forward + backward + SGD step of yolov5n and yolov5s at 320 and 640 px,
//! batch 16 (override with BENCH_BATCH), in ms per iteration and achieved GFLOP/s (forward FLOPs × 3 for
//! forward + backward). If a Python with torch is importable, the same step in PyTorch is timed in the same run
//! and the ratio printed. A benchmark: it prints figures and asserts nothing.
//!
//! `cargo run --release --example train_step_bench [-- yolov5n 320]`

use std::time::Instant;
use tch::{Device, Kind, Tensor};
use yolo_lab::loss::{ComputeLoss, LossConfig};
use yolo_lab::model::Yolo;

fn main() -> yolo_lab::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cases: Vec<(String, i64)> = if args.len() == 2 {
        vec![(args[0].clone(), args[1].parse().expect("image size"))]
    } else {
        vec![("yolov5n".into(), 320), ("yolov5n".into(), 640), ("yolov5s".into(), 320), ("yolov5s".into(), 640)]
    };
    let batch: i64 = std::env::var("BENCH_BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(16);
    let iters: usize = std::env::var("BENCH_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    println!("threads {} | batch {batch} | {iters} timed iterations after 1 warm-up", tch::get_num_threads());
    println!("{:<8} {:>5} {:>12} {:>10} {:>14}", "model", "img", "ms/iter", "GFLOP/s", "PyTorch ratio");
    for (cfg, img) in cases {
        let model = Yolo::new(&cfg, Some(80), Device::Cpu)?;
        let hyp = yolo_lab::hyp::Hyp::default();
        let loss = ComputeLoss::new(&model, LossConfig::from_hyp(&hyp, 80, 3, img, 0.0));
        let mut opt = yolo_lab::optim::Optimizer::new(yolo_lab::optim::OptimizerKind::Sgd, &model, 0.01, 0.937, 5e-4);
        tch::manual_seed(0);
        let x = Tensor::rand([batch, 3, img, img], (Kind::Float, Device::Cpu));
        let targets = Tensor::from_slice(&[0f32, 1.0, 0.5, 0.5, 0.2, 0.3, 1.0, 2.0, 0.3, 0.6, 0.1, 0.1]).view([2, 6]);
        let mut step = || {
            opt.zero_grad();
            let out = loss.forward(&model.forward_t(&x, true), &targets);
            out.total.backward();
            yolo_lab::optim::clip_grad_norm(&opt.params(), 10.0);
            opt.step();
        };
        step();
        let t = Instant::now();
        for _ in 0..iters {
            step();
        }
        let ms = t.elapsed().as_secs_f64() * 1000.0 / iters as f64;
        let flops = 3.0 * 2.0 * model.macs(img) * batch as f64;
        let gflops = flops / 1e9 / (ms / 1000.0);
        let ratio =
            pytorch_ms(&cfg, img, batch, iters).map(|p| format!("{:.2}", ms / p)).unwrap_or_else(|| "n/a".into());
        println!("{cfg:<8} {img:>5} {ms:>12.1} {gflops:>10.1} {ratio:>14}");
    }
    Ok(())
}

/// Time the same step in PyTorch when `python3 -c "import torch"` works (needs a YOLOv5 checkout on
/// PYTHONPATH as YOLOV5_DIR to build the model); otherwise None.
fn pytorch_ms(cfg: &str, img: i64, batch: i64, iters: usize) -> Option<f64> {
    let yolov5 = std::env::var("YOLOV5_DIR").ok()?;
    let script = format!(
        "import sys,time,torch;sys.path.insert(0,'{yolov5}');from models.yolo import Model;from utils.loss import ComputeLoss
m=Model('{yolov5}/models/{cfg}.yaml',nc=80);m.hyp=dict(box=0.05,cls=0.5,obj={obj},cls_pw=1.0,obj_pw=1.0,anchor_t=4.0,fl_gamma=0.0,label_smoothing=0.0);m.train()
L=ComputeLoss(m);o=torch.optim.SGD(m.parameters(),lr=0.01,momentum=0.937,nesterov=True)
x=torch.rand({batch},3,{img},{img});t=torch.tensor([[0,1,.5,.5,.2,.3],[1,2,.3,.6,.1,.1]])
def s():
  o.zero_grad();l=L(m(x),t)[0];l.backward();torch.nn.utils.clip_grad_norm_(m.parameters(),10.0);o.step()
s();a=time.time()
for _ in range({iters}):s()
print((time.time()-a)*1000/{iters})",
        obj = (img as f64 / 640.0).powi(2)
    );
    let out = std::process::Command::new("python3").args(["-c", &script]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}
