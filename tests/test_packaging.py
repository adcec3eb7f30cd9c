"""The package is publishable: `python -m build` makes an sdist and a wheel (built from that sdist) that
carry the bundled assets, and the wheel installs into a fresh virtualenv and runs from there."""
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSETS = sorted(p.name for p in (ROOT / "gancompress" / "assets").iterdir() if p.suffix in (".safetensors", ".json"))


def _clean_env() -> dict:
    """No PYTHONPATH: what runs must come from the virtualenv, not from this checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GANCOMPRESS_DEBUG")}
    env.update(NO_COLOR="1", OMP_NUM_THREADS="1")
    return env


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    pytest.importorskip("build", reason="needs the `build` package (pip install -e .[test])")
    src = tmp_path_factory.mktemp("src")  # a copy, so the build leaves nothing in the checkout
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "gancompress", src / "gancompress", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("dist")
    r = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(src)],
                       capture_output=True, text=True, env=_clean_env(), timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def venv(dist, tmp_path_factory) -> Path:
    """A fresh virtualenv that sees the machine's torch (system site packages) and gets the wheel with --no-deps."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    wheel = next(dist.glob("*.whl"))
    r = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheel)],
                       capture_output=True, text=True, env=_clean_env(), timeout=600)
    assert r.returncode == 0, r.stderr
    return root


def test_sdist_and_wheel_carry_the_bundled_assets(dist):
    wheel = next(dist.glob("gancompress-*.whl"))
    sdist = next(dist.glob("gancompress-*.tar.gz"))
    names = zipfile.ZipFile(wheel).namelist()
    assert ASSETS and all(f"gancompress/assets/{a}" in names for a in ASSETS), names
    assert "gancompress/cli/main.py" in names and not any(n.startswith("tests/") for n in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "gancompress = gancompress.cli.main:app" in zipfile.ZipFile(wheel).read(entry_points).decode()
    with tarfile.open(sdist) as tar:
        members = tar.getnames()
    assert all(any(m.endswith(f"gancompress/assets/{a}") for m in members) for a in ASSETS)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Project-URL: Repository," in metadata and "License-Expression: Apache-2.0" in metadata


def test_wheel_installs_and_runs_from_a_fresh_virtualenv(venv, tmp_path):
    env = _clean_env()
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import gancompress; print(gancompress.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, check=True).stdout.strip()
    assert Path(where).resolve().is_relative_to(venv.resolve()), where  # the installed copy, not the checkout
    cli = str(venv / "bin" / "gancompress")
    r = subprocess.run([cli, "--help"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0 and "prune" in r.stdout and "demo" in r.stdout, r.stderr
    r = subprocess.run([cli, "inspect", "builtin:digits-dcgan", "--json"], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=300)  # reads the bundled generator from the installed package
    assert r.returncode == 0, r.stderr
    assert '"has_discriminator": true' in r.stdout and not list(tmp_path.iterdir())


@pytest.mark.slow
def test_demo_runs_from_the_installed_wheel(venv, tmp_path):
    r = subprocess.run([str(venv / "bin" / "gancompress"), "demo", "--steps", "4", "--out-dir", "d", "-q"],
                       capture_output=True, text=True, env=_clean_env(), cwd=tmp_path, timeout=1200)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "d" and (tmp_path / "d" / "demo.json").is_file()


def test_the_model_card_and_the_package_metadata_name_the_same_repository():
    import tomllib

    from gancompress.export.hub import REPOSITORY_URL

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["urls"]["Repository"] == REPOSITORY_URL
    workflow = (ROOT / "examples" / "ci" / "github-actions.yml").read_text()
    assert f"git+{REPOSITORY_URL}" in workflow
