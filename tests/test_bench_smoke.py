"""The benchmark's own functions on one tiny configuration, in this process: elman and
the NumPy loop only, so it needs no peer and no matplotlib, and takes about a second."""

import csv
import json

import pytest

import elman
from elman import benchmark
from elman._bench.grid import Config
from elman._bench.measure import statistics_of

SHAPE = (3, 2, 4, 5)  # T, B, I, H


@pytest.fixture
def results(tmp_path, capsys):
    threads = elman.get_num_threads()
    try:
        runs = benchmark.run_benchmark([SHAPE], [1], repeats=1, peers=["numpy"],
                                       sgemm_n=64, run=benchmark.do_job)
    finally:
        elman.set_num_threads(threads)
    base = benchmark.report_runs(runs, ["numpy"], tmp_path)
    return base, capsys.readouterr().out


def test_json(results):
    base, _ = results
    data = json.loads(base.with_suffix(".json").read_text())
    env = data["environment"]
    for key in ("cpu", "cpu_count", "env", "thread_counts", "sgemm", "versions", "date"):
        assert key in env
    assert env["thread_counts"] == [1]
    sgemm = env["sgemm"]["1"]
    assert sgemm["numpy"] > 0 and sgemm["used"] >= sgemm["numpy"]
    rows = {r["impl"]: r for r in data["results"]}
    assert set(rows) == {"elman", "numpy"}
    for row in rows.values():
        assert row["status"] == "ok" and row["repeats"] == 1
        assert row["median_ms"] > 0 and row["gflops"] > 0 and row["fraction_of_sgemm"] > 0
        assert row["max_abs_error"] < 1e-4
        assert row["wy_read_bound_ratio"] is None  # B > 1
    [gain] = data["speedups"]
    assert gain["fastest_peer"] == "numpy" and gain["peer_threads"] == 1 and gain["speedup"] > 0
    assert env["impl_env"] == {}  # in this process: no variable can reach a loaded OpenBLAS
    assert (gain["T"], gain["B"], gain["I"], gain["H"], gain["threads"]) == (*SHAPE, 1)


def test_csv(results):
    base, _ = results
    with base.with_suffix(".csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["impl"] for r in rows] == ["elman", "numpy"]
    for field in ("us_per_step", "gflops", "fraction_of_sgemm", "wy_read_bound_ratio"):
        assert field in rows[0]
    assert float(rows[0]["speedup"]) > 0 and rows[1]["speedup"] == ""
    assert rows[0]["peer_threads"] == "1" and rows[1]["peer_threads"] == ""


def test_markdown(results):
    base, printed = results
    text = base.with_suffix(".md").read_text()
    assert text == printed
    assert "W_y-read bound ratio" in text and "speed-up" in text and "sgemm" in text
    assert "| 3 | 2 | 4 | 5 | 1 | elman |" in text


def test_bound_ratio_at_batch_one():
    config = Config(T=10, B=1, I=4, H=256, threads=2)
    row = statistics_of([10e-6], config)
    # 4*256*256 bytes at 2 x 100 GB/s: 1.31 us; a step of 1 us is 0.76 of it.
    assert row["wy_read_bound_ratio"] == pytest.approx(1.0 / 1.31072, rel=1e-6)


def test_speedup_takes_each_peer_at_its_best_up_to_the_thread_count():
    """elman chooses its own threads up to n; a peer may also be faster on fewer threads
    than it is given (its pool's costs on a small problem). So at n threads each peer
    counts at its best over the counts up to n, never over more; wrong or failed rows
    never count. (Before, a peer counted only at exactly n threads.)"""
    from elman._bench.report import peer_name, speedups

    def row(impl, threads, ms, status="ok"):
        return {"impl": impl, "role": "elman" if impl == "elman" else "peer", "T": 10, "B": 1,
                "I": 4, "H": 8, "threads": threads, "status": status, "median_ms": ms,
                "us_per_step": ms * 100, "gflops": 1.0, "fraction_of_sgemm": 0.5,
                "wy_read_bound_ratio": None}

    rows = [row("elman", 1, 1.0), row("jax", 1, 2.0), row("torch", 1, 3.0), row("numpy", 1, 0.5, "wrong"),
            row("elman", 2, 1.0), row("jax", 2, 4.0), row("torch", 2, 2.5), row("numpy", 2, 0.1, "failed")]
    one, two = speedups(rows)
    assert (one["threads"], one["fastest_peer"], one["peer_threads"], one["speedup"]) == (1, "jax", 1, 2.0)
    assert (two["threads"], two["fastest_peer"], two["peer_threads"], two["speedup"]) == (2, "jax", 1, 2.0)
    assert peer_name(one) == "jax" and peer_name(two) == "jax (1 thr)"
    rows[1]["median_ms"] = 5.0  # jax now slower at 1 thread: torch at 2 is the best up to 2
    one, two = speedups(rows)
    assert (one["fastest_peer"], one["speedup"]) == ("torch", 3.0)
    assert (two["fastest_peer"], two["peer_threads"], two["speedup"]) == ("torch", 2, 2.5)
    assert peer_name(two) == "torch"


# ---------------------------------------------------------------- command line refusals
@pytest.mark.parametrize("argv", [["--config", "1,1,1"], ["--config", "0,1,1,1"], ["--threads", "0"],
                                  ["--threads", "1,100000"], ["--peers", "foo"], ["--repeats", "0"]])
def test_bad_arguments_are_usage_errors(argv, capsys):
    from elman.__main__ import main
    with pytest.raises(SystemExit) as exit_:
        main(["bench", *argv])
    assert exit_.value.code == 2 and f"argument {argv[0]}:" in capsys.readouterr().err


def test_unwritable_out_is_refused_before_measuring(tmp_path, monkeypatch, capsys):
    from elman.__main__ import main
    monkeypatch.setattr(benchmark, "run_benchmark", lambda *a, **k: pytest.fail("measured anyway"))
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["bench", "--out", str(blocker / "results")]) == 2
    assert "--out: cannot write to" in capsys.readouterr().err


def test_missing_plot_input(tmp_path, capsys):
    from elman.__main__ import main
    assert main(["bench", "--plot", str(tmp_path / "none.json")]) == 2
    assert "--plot: no such file" in capsys.readouterr().err
    for text in ("not json", "{}", "[1]"):  # (tracebacks: JSONDecodeError, KeyError)
        (tmp_path / "bad.json").write_text(text)
        assert main(["bench", "--plot", str(tmp_path / "bad.json")]) == 2
        assert "is not a results JSON of this benchmark" in capsys.readouterr().err
