"""superpose installed from its wheel, run outside the source tree, finds its configs and checkpoint:
every shipped config validates by its ``configs/...`` name, the construction configs and both
reproduce plans run (a plan's dry run parses every step), and a probe and a sweep run on real models."""

import json
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Run by the installed copy: load every packaged config by its name, with the loader of its kind.
VALIDATE_EVERY_CONFIG = """
from superpose.config import PACKAGED_CONFIGS
from superpose.experiments.mechanism import load_mechanism_config
from superpose.experiments.probe import load_probe_config
from superpose.experiments.reproduce import load_plan
from superpose.experiments.scale import load_scale_config
from superpose.experiments.sweep import load_sweep_config
from superpose.scratch.train import load_train_config
from superpose.vectors.config import load_vectors_config

loaders = {"paper": load_probe_config, "sweep": load_sweep_config, "scale": load_scale_config,
           "vectors": load_vectors_config, "scratch": load_train_config, "mechanism": load_mechanism_config,
           "reproduce": lambda name: load_plan(None, name, None)}
for path in sorted(PACKAGED_CONFIGS.rglob("*.yaml")):
    rel = path.relative_to(PACKAGED_CONFIGS)
    folder = rel.parts[0] if len(rel.parts) > 1 else "paper"  # demo.yaml is a probe config
    if folder != "construct":  # the construction configs run for real
        loaders[folder]("configs/" + rel.as_posix())
        print("configs/" + rel.as_posix())
"""


def test_wheel_installs_and_runs_outside_the_source_tree(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTHONPATH", raising=False)  # the installed copy must not find a source tree
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(REPO)], check=True, cwd=tmp_path,
                           capture_output=True, text=True)
    # The project's own metadata builds without a warning (a licence table stops building in 2027).
    assert "deprecated" not in build.stdout + build.stderr, build.stderr
    (wheel,) = (tmp_path / "dist").glob("superpose-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("superpose/configs/demo.yaml", "superpose/configs/reproduce/cpu.yaml",
                   "superpose/configs/paper/copy.yaml", "superpose/report/templates/report.html.j2",
                   "superpose/checkpoints/scratch-plus-cpu/model.safetensors",
                   "superpose/explore/static/index.html", "superpose/explore/static/app.js",
                   "superpose/explore/static/vendor/chart.umd.min.js",
                   "superpose/explore/static/vendor/chart.js-LICENSE.md"):
        assert needed in names, needed

    # A fresh environment: the wheel in its own site-packages; the dependencies (torch, transformers,
    # ...) read from this interpreter's site-packages through a .pth path line, which does not run
    # the source checkout's editable-install hook.
    env_dir = tmp_path / "env"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                        text=True).strip())
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                   check=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    where = subprocess.check_output([str(python), "-c", "import superpose; print(superpose.__file__)"],
                                    cwd=outside, text=True).strip()
    assert where.startswith(str(site)), where  # the installed copy, not the checkout

    shipped = sorted("configs/" + p.relative_to(REPO / "configs").as_posix() for p in (REPO / "configs").rglob("*.yaml"))
    validated = subprocess.run([str(python), "-c", VALIDATE_EVERY_CONFIG], cwd=outside, capture_output=True, text=True)
    assert validated.returncode == 0, validated.stderr
    assert sorted(validated.stdout.split()) == [c for c in shipped if not c.startswith("configs/construct/")]
    assert sum(n.startswith("superpose/configs/") and n.endswith(".yaml") for n in names) == len(shipped)

    superpose = env_dir / "bin" / "superpose"
    for config in (c for c in shipped if c.startswith("configs/construct/")):
        done = subprocess.run([str(superpose), "construct", config, "--dims", "1,4", "--no-progress"], cwd=outside,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (config, done.stderr)
        folder = Path(outside, done.stdout.splitlines()[-1].removeprefix("run folder: "))
        assert json.loads((folder / "summary.json").read_text())["passed"], config
    for plan in ("cpu", "paper"):
        done = subprocess.run([str(superpose), "reproduce", "--scale", plan, "--dry-run"], cwd=outside,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0 and done.stdout.count("superpose ") >= 6, (plan, done.stderr)
    done = subprocess.run([str(superpose), "run", "--model", "smollm2-135m", "--n-prompts", "1", "--no-progress"],
                          cwd=outside, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    run = Path(outside, done.stdout.splitlines()[-1].removeprefix("run folder: "))
    assert (run / "summary.json").is_file() and run.parent == outside / "runs"
    listing = subprocess.run([str(superpose), "models"], cwd=outside, capture_output=True, text=True)
    assert "scratch-plus-cpu  [installed]" in listing.stdout
    sweep = subprocess.run([str(superpose), "sweep", "configs/sweep/plus_scratch.yaml", "--n-prompts", "1",
                            "--no-progress"], cwd=outside, capture_output=True, text=True, timeout=600)
    assert sweep.returncode == 0, sweep.stderr  # a packaged config, on the packaged checkpoint
