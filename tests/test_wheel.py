"""superpose installed from its wheel, run outside the source tree, finds its configs and checkpoint."""

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_installs_and_runs_outside_the_source_tree(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(REPO)], check=True, cwd=tmp_path)
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

    superpose = env_dir / "bin" / "superpose"
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
