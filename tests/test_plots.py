"""Figure modules and matplotlib's backend: Agg when nothing is chosen, the user's choice otherwise (a notebook's
inline backend must survive ``import astrocnn.spectra.plots`` and training, which draws its figures)."""
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _run(code: str, **env: str) -> None:
    e = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    e["PYTHONPATH"] = os.pathsep.join([str(SRC), e.get("PYTHONPATH", "")])
    e.update(env)
    done = subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_agg_when_no_backend_is_chosen():
    _run("import matplotlib, astrocnn.spectra.plots, astrocnn.gw.plots\n"
         "assert matplotlib.get_backend().lower() == 'agg', matplotlib.get_backend()")


def test_a_chosen_backend_is_kept_and_figures_still_written(tmp_path):
    out = tmp_path / "dv.png"
    # MPLBACKEND is how ipykernel names a notebook's inline backend
    _run("import matplotlib, numpy as np\n"
         "from astrocnn.spectra.plots import plot_dv_hist\n"
         f"plot_dv_hist(np.array([0.0, 100.0, -7000.0]), {str(out)!r})\n"
         "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()", MPLBACKEND="svg")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    eff = tmp_path / "efficiency.png"
    _run("import matplotlib, numpy as np\n"
         "from astrocnn.gw.plots import plot_efficiency_vs_snr\n"
         "rng = np.random.default_rng(0)\n"
         f"plot_efficiency_vs_snr(rng.uniform(2, 20, 50), rng.normal(1, 1, 50), rng.normal(0, 1, 50), {str(eff)!r})\n"
         "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()", MPLBACKEND="svg")
    assert eff.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _run("import matplotlib\nmatplotlib.use('pdf')\nimport matplotlib.pyplot\n"
         "import astrocnn.core.plots, astrocnn.spectra.plots, astrocnn.gw.plots\n"
         "assert matplotlib.get_backend() == 'pdf', matplotlib.get_backend()")
