#!/usr/bin/env python3
"""Execute the notebooks headless with the evcxr kernel and check what they produced.

    scripts/run_notebooks.py                 run every notebook into runs/notebooks/, check outputs
    scripts/run_notebooks.py --write         run and write the outputs back into notebooks/ (to commit)
    scripts/run_notebooks.py 01 03           only notebooks whose names start with these prefixes

Fails (exit 1) on a cell error, a panic, or a notebook without the rich outputs it should show (an image, an
HTML table). YOLO_LAB_QUICK=1 shrinks every run inside the notebooks (CI); the build of the notebooks' dependencies
is kept in $YOLO_LAB_CACHE/evcxr-build so later runs reuse it (one kernel at a time). EVCXR_OPT sets the
optimisation level of cell builds (default 0 in quick mode, 1 otherwise).
"""
import json, os, pathlib, subprocess, sys, time

REPO = pathlib.Path(__file__).resolve().parent.parent
CACHE = pathlib.Path(os.environ.get("YOLO_LAB_CACHE", pathlib.Path.home() / ".cache" / "yolo-lab"))
VENV = CACHE / "venv"
# notebook -> outputs it must contain
EXPECT = {
    "01-quickstart": {"image", "table"},
    "02-hyperparameter-evolution": {"image", "table"},
    "03-exploring-evolve-csv": {"image", "table"},
    "04-freeze-transfer-learning": {"image", "table"},
    "05-hyperparameters-explained": {"image"},
}


# issue 16: a reader scrolls past no more than this much printed output per cell
MAX_STREAM_LINES = 40
# and every notebook ends with at least this many exercises ("## Try this", numbered items)
MIN_EXERCISES = 2


def lint(nb):
    """Cells that print too much, and whether the exercises are there."""
    problems = []
    for i, c in enumerate(nb["cells"]):
        if c["cell_type"] != "code":
            continue
        n = sum("".join(o.get("text", "")).count("\n") for o in c.get("outputs", []) if o.get("output_type") == "stream")
        if n > MAX_STREAM_LINES:
            problems.append(f"cell {i} ({c.get('id', '?')}) prints {n} lines (at most {MAX_STREAM_LINES})")
    tries = [c for c in nb["cells"] if c["cell_type"] == "markdown" and "".join(c["source"]).startswith("## Try this")]
    items = sum(sum(1 for l in "".join(c["source"]).splitlines() if l[:3].strip().rstrip(".").isdigit()) for c in tries)
    if items < MIN_EXERCISES:
        problems.append(f"{items} exercises under '## Try this' (at least {MIN_EXERCISES})")
    return problems


def kinds(nb):
    """What rich outputs a notebook has, and its errors."""
    found, errors = set(), []
    for c in nb["cells"]:
        for o in c.get("outputs", []):
            if o.get("output_type") == "error":
                errors.append(f"{o.get('ename', 'error')}: {o.get('evalue', '')}\n" + "\n".join(o.get("traceback", [])))
            if o.get("output_type") == "stream" and "panicked at" in "".join(o.get("text", "")):
                errors.append("".join(o.get("text", "")))
            data = o.get("data", {})
            html = "".join(data.get("text/html", ""))
            if "image/png" in data or "<img" in html:
                found.add("image")
            if "<table" in html:
                found.add("table")
    return found, errors


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    write = "--write" in sys.argv
    quick = bool(os.environ.get("YOLO_LAB_QUICK"))
    out_dir = REPO / "runs" / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["JUPYTER_PATH"] = str(VENV / "share" / "jupyter")
    env["EVCXR_TMPDIR"] = str(CACHE / "evcxr-build")
    cfg = CACHE / "evcxr-config-quick" if quick else CACHE / "evcxr-config"
    cfg.mkdir(parents=True, exist_ok=True)
    # evcxr.toml, not init.evcxr: commands in init.evcxr made the kernel die at startup (dlopen failed)
    (cfg / "init.evcxr").unlink(missing_ok=True)
    (cfg / "evcxr.toml").write_text(f"[evcxr]\nopt_level = \"{os.environ.get('EVCXR_OPT', '0' if quick else '1')}\"\n")
    env["EVCXR_CONFIG_DIR"] = str(cfg)
    pathlib.Path(env["EVCXR_TMPDIR"]).mkdir(parents=True, exist_ok=True)
    failures = []
    for nb_path in sorted((REPO / "notebooks").glob("*.ipynb")):
        name = nb_path.stem
        if args and not any(name.startswith(a) for a in args):
            continue
        target = nb_path if write else out_dir / nb_path.name
        t0 = time.time()
        print(f"notebooks: running {name} ...", flush=True)
        cmd = [str(VENV / "bin" / "jupyter"), "nbconvert", "--to", "notebook", "--execute", "--allow-errors",
               "--ExecutePreprocessor.kernel_name=rust", "--ExecutePreprocessor.timeout=-1",
               "--ExecutePreprocessor.startup_timeout=900", "--output-dir", str(target.parent),
               "--output", target.name, str(nb_path)]
        r = subprocess.run(cmd, cwd=REPO / "notebooks", env=env)
        took = time.time() - t0
        if r.returncode != 0 or not target.is_file():
            failures.append(f"{name}: nbconvert exited {r.returncode}")
            continue
        nb = json.loads(target.read_text())
        found, errors = kinds(nb)
        missing = EXPECT.get(name, set()) - found
        if errors:
            failures.append(f"{name}: cell errors:\n" + "\n".join(errors))
        if missing:
            failures.append(f"{name}: missing rich outputs {sorted(missing)} (found {sorted(found)})")
        failures.extend(f"{name}: {p}" for p in lint(nb))
        print(f"notebooks: {name} done in {took:.0f} s, outputs {sorted(found)}", flush=True)
    if failures:
        print("\n".join(["notebooks: FAILED"] + failures), file=sys.stderr)
        sys.exit(1)
    print("notebooks: all passed")


if __name__ == "__main__":
    main()
