"""A table of bad command lines across every config group and subcommand, run in-process.

Each must end with exit code 2, exactly one stderr line ``qkdjax: error: ...`` (no traceback, nothing on stdout),
before any compilation, and with nothing written: ``tmp_path`` is the working directory and holds ``output.dir``.
"""

import os
import subprocess
import sys

import jax
import pytest

from qkdjax import cli, sweep

OUT = "out"  # output.dir, relative to tmp_path (the working directory)
LONG_NAME = "n" * 300
HOP = "{distance_km: 10, attenuation_db_per_km: 0.2}"
TRUSTED = ("sweep=tokyo_2010",)
CORRIDOR = ("sweep=corridor",)
NETWORK = ("sweep=tokyo_network",)
DOWNLINK = ("sweep=satquma_downlink", "link.elevation_deg=45")
FINITE = ("protocol.block_size=1e6",)
OPTIMISED = ("optimize.enabled=true",)
INVERSE = ("inverse.target_key_rate=1", "inverse.solve=[link.distance_km]")
ZARR = ("output.format=zarr",)

CASES = [
    # link: fibre
    ("link.distance_km=-1",),
    ("link.distance_km=abc",),
    ("link.distance_km=[]",),
    ("link.distance_km=[1,1]",),
    ("link.distance_km=nan",),
    ("link.distance_km=inf",),
    ("link.distance_km=[1,abc]",),
    ("link.distance_km=null",),
    ("link.distance_km={a: 1}",),
    ("link.attenuation_db_per_km=-0.2",),
    ("link.extra_loss_db=x",),
    ("link.type=copper",),
    ("link.distanc_km=5",),
    ("+link.fiber_type=smf28",),
    ("link=nope",),
    ("link=null",),
    ("link=fibre.yaml",),
    ("link=[fibre,corridor]",),
    ("link.distance_km=${linspace:0,250}",),
    ("link.distance_km=${logspace:0,2,0}",),
    ("link.distance_km=${linspace:0,250,2.5}",),
    ("link.distance_km=${linspace:0,inf,3}",),
    ("link.distance_km=${linspace:0,1,100000000000}",),
    # link: satellite
    (*DOWNLINK, "link.elevation_deg=100"),
    (*DOWNLINK, "link.altitude_km=10"),
    (*DOWNLINK, "link.min_elevation_deg=90"),
    (*DOWNLINK, "link.wavelength_nm=0"),
    (*DOWNLINK, "link.transmitter_radius_m=0"),
    (*DOWNLINK, "link.zenith_transmittance=1.5"),
    (*DOWNLINK, "link.cloud_free_prob=2"),
    (*DOWNLINK, "link.station_latitude_deg=85"),
    (*DOWNLINK, "link.distance_km=5"),
    (*DOWNLINK, "link.transmitter_radius_m=5", "link.altitude_km=150"),
    (*DOWNLINK, "link.elevation_deg=[10,10]"),
    ("sweep=satquma_downlink", "link=satellite_uplink", "link.elevation_deg=-1"),
    ("sweep=satellite_pass", "protocol.block_size=1e6"),
    ("sweep=satellite_pass", "inverse.target_key_rate=1", "inverse.solve=[detector.efficiency]"),
    ("sweep=satellite_pass", "link.atmosphere_table=[[0,0.5],[45,0.4]]"),
    ("sweep=satellite_pass", "link.atmosphere_table=[[0,0.5],[90,0]]"),
    ("sweep=satellite_pass", "link.atmosphere_table=[[0,a],[90,0.8]]"),
    ("sweep=satellite_pass", "link.atmosphere_table=5"),
    ("sweep=satellite_pass", "protocol.finite_key_bound=bernstein"),
    # link: trusted-node chain
    (*TRUSTED, "link.hops=[{distance_km: [10, 20], attenuation_db_per_km: 0.2}]"),
    (*TRUSTED, "link.hops=[]"),
    (*TRUSTED, "link.hops=5"),
    (*TRUSTED, "link.hops=[{distance_km: 10}]"),
    (*TRUSTED, "link.hops=[{distance_km: 10, attenuation_db_per_km: 0.2, bogus: 1}]"),
    (*TRUSTED, "link.hops=[{distance_km: 10, attenuation_db_per_km: 0.2, detector: {efficiency: 2}}]"),
    (*TRUSTED, "link.hops=[{distance_km: 10, attenuation_db_per_km: 0.2, detector: 5}]"),
    (*TRUSTED, "link.hops=[5]"),
    (*TRUSTED, f"link.hops=[{HOP}, {{distance_km: -1, attenuation_db_per_km: 0.2}}]"),
    (*TRUSTED, "link.paths=0"),
    (*TRUSTED, "link.paths=1e12"),  # no cap on paths, but no machine holds a trillion
    (*TRUSTED, "link.paths=1.5"),
    (*TRUSTED, "link.hop_mtbf_h=0"),
    (*TRUSTED, "link.hop_mtbf_h=-inf"),
    (*TRUSTED, "link.hop_mttr_h=-1"),
    (*TRUSTED, "link.hop_mttr_h=inf"),
    (*TRUSTED, "link.failure_shape=0.1"),
    (*TRUSTED, "link.repair_log_sigma=4"),
    (*TRUSTED, "link.buffer_bits=-1"),
    (*TRUSTED, "link.demand_bps=abc"),
    (*TRUSTED, "link.distance_km=5"),
    (*TRUSTED, *INVERSE),  # inverse questions: links evaluated at one point only
    (*TRUSTED, "optimize.enabled=true", "optimize.params=[protocol.sending_prob]"),  # not bb84_decoy's
    # link: corridor and key supply
    (*CORRIDOR, "link.trusted_nodes=1e9"),  # no cap on nodes, but no machine holds a billion slots
    (*CORRIDOR, "+link.node_slots=4"),  # set from the grid, not by the user
    (*CORRIDOR, "link.trusted_nodes=1.5"),
    (*CORRIDOR, "link.total_length_km=-5"),
    (*CORRIDOR, "link.node_mtbf_h=0"),
    (*CORRIDOR, "montecarlo.trials=1000000000000"),
    (*CORRIDOR, "montecarlo.trials=10", "supply.time_step_s=1e-6", "supply.horizon_h=240"),
    (*CORRIDOR, "supply.time_step_s=0"),
    (*CORRIDOR, "supply.horizon_h=-1"),
    (*CORRIDOR, "supply.horizon_h=inf"),
    (*CORRIDOR, "supply.time_step_s=1e9"),
    (*CORRIDOR, "supply.time_step_s=abc"),
    (*CORRIDOR, *INVERSE),
    # link: network, costs and designs
    (*NETWORK, "link.demand_bps=-1"),
    (*NETWORK, "link.store_initial_fill=2"),
    (*NETWORK, "link.links=[]"),
    (*NETWORK, "link.links=[{a: Koganei, b: Nowhere, key_rate_bps: 1}]"),
    (*NETWORK, "link.links=[{a: Koganei, b: Otemachi, distance_km: [1, 2], attenuation_db_per_km: 0.2}]"),
    (*NETWORK, "link.demands=[{a: Koganei, b: Otemachi}]"),
    (*NETWORK, "link.sites=[{name: A, kind: relay}, {name: B, kind: user}]"),
    (*NETWORK, "cost=example", "cost.discount_rate=2"),
    (*NETWORK, "design.enabled=true"),  # no price set
    (*NETWORK, "cost=example", "design.enabled=true"),  # a demand axis of 4 values
    (*NETWORK, "montecarlo.keep_trials=true"),
    (*NETWORK, *INVERSE),
    # detector
    ("detector.efficiency=0",),
    ("detector.efficiency=1.5",),
    ("detector.efficiency=[0.1,1.2]",),
    ("detector.efficiency=[0.1,abc]",),
    ("detector.dark_count_prob=0.6",),
    ("detector.dark_count_prob=abc",),
    ("detector.afterpulse_prob=1",),
    ("detector.dead_time_ns=-1",),
    ("detector.misalignment=0.6",),
    ("detector.bogus=1",),
    ("detector=nope",),
    ("detector=null",),
    ("detector=snspd.yaml",),
    ("~detector",),
    # source
    ("source.mu_signal=0",),
    ("source.mu_decoy=0.6",),
    ("source.mu_decoy=[0.1,0.5]",),
    ("source.mu_weak=-1",),
    ("source.mu_weak=0.2",),
    ("source.mu_decoy=0.3", "source.mu_weak=0.25"),
    ("source.p_signal=0",),
    ("source.p_signal=1.2",),
    ("source.p_decoy=0.3",),
    ("source.rep_rate_hz=0",),
    ("source=nope",),
    ("source.mu_signal=true",),
    # protocol
    ("protocol.decoy=two_decoys",),
    ("protocol.decoy=[none,none]",),
    ("protocol.decoy=[]",),
    ("protocol.p_key_basis=1",),
    ("protocol.p_key_basis=-0.1",),
    ("protocol.ec_efficiency=0.5",),
    ("protocol.block_size=0",),
    (*FINITE, "protocol.eps_sec=0"),
    (*FINITE, "protocol.eps_sec_per_key_bit=1e-12"),
    (*FINITE, "protocol.eps_sec=null"),
    ("protocol.eps_cor=1",),
    ("protocol.qber_abort=0.6",),
    ("protocol=nope",),
    # optimize
    ("optimize.enabled=maybe",),
    (*OPTIMISED, "optimize.params=[bogus]"),
    (*OPTIMISED, "optimize.params=[]"),
    (*OPTIMISED, "optimize.params=[source.mu_signal,source.mu_signal]"),
    (*OPTIMISED, "optimize.bounds.source.mu_signal=[0.5,0.1]"),
    (*OPTIMISED, "optimize.bounds.source.mu_signal=[0,2]"),
    (*OPTIMISED, "optimize.bounds.source.mu_signal=5"),
    (*OPTIMISED, "optimize.starts=0"),
    (*OPTIMISED, "optimize.steps=0"),
    (*OPTIMISED, "optimize.steps=1e9"),
    (*OPTIMISED, "optimize.steps=1000000000"),
    (*OPTIMISED, "optimize.starts=1000000"),
    (*OPTIMISED, "optimize.learning_rate=0"),
    (*OPTIMISED, "source.mu_signal=[0.3,0.5]"),
    # inverse
    ("inverse.target_key_rate=-1",),
    ("inverse.target_key_rate=abc",),
    ("inverse.solve=[link.distance_km]",),
    ("inverse.target_key_rate=1", "inverse.solve=[bogus]"),
    ("inverse.target_key_rate=1", "inverse.solve=[]"),
    (*INVERSE, "inverse.iterations=0"),
    (*INVERSE, "inverse.iterations=1000000000"),
    (*INVERSE, "inverse.optimize_steps=0"),
    ("inverse.target_key_rate=1", "inverse.solve=[detector.efficiency]", "inverse.bounds.detector.efficiency=[0,1]"),
    (*INVERSE, "inverse.bounds.link.distance_km=[-5,100]"),
    # montecarlo
    ("montecarlo.trials=-1",),
    ("montecarlo.trials=1e12",),
    ("montecarlo.trials=abc",),
    ("montecarlo.trials=10",),
    (*FINITE, "montecarlo.trials=1000000000000"),
    ("montecarlo.keep_trials=maybe",),
    ("montecarlo.keep_trials=true",),
    # sweep: chunks, shards, named sweeps, sizes
    ("sweep.chunk_size=0",),
    ("sweep.chunk_size=abc",),
    ("sweep.num_shards=0",),
    ("sweep.num_shards=2",),
    ("sweep.shard=0", "sweep.num_shards=2"),
    ("sweep.shard=5",),
    ("sweep.shard=-1", "sweep.num_shards=2", *ZARR),
    ("sweep=nope",),
    ("sweep=null",),
    ("sweep=default.yaml",),
    ("sweep=[default,gys_2005]",),
    ("link.distance_km=${linspace:0,250,100000}", "detector.efficiency=${linspace:0.01,1,1000000}"),
    ("link.distance_km=${linspace:0,250,1000000}", "detector.efficiency=${linspace:0.01,1,1000000}", *ZARR),
    (*FINITE, "montecarlo.trials=100000", "montecarlo.keep_trials=true", "link.distance_km=${linspace:0,250,100000}"),
    (*FINITE, "montecarlo.trials=1000000", "sweep.chunk_size=100000000000"),
    # output
    ("output.name=../../x",),
    ("output.name=${oc.env:PATH}",),
    ("output.name=[a,b]",),
    ("output.name={a: 1}",),
    ("output.name='a\nb'",),
    ("output.name=.hidden",),
    ("output.name=a/b",),
    ("output.name=''",),
    ("output.name=a b",),
    (f"output.name={LONG_NAME}",),
    ("output.name=${oc.env:QKDJAX_UNSET_VARIABLE}",),
    ("output.dir=null",),
    ("output.dir=",),
    ("output.dir=[a,b]",),
    ("output.dir=/proc/qkdjax",),
    ("output.dir=file.txt/sub",),
    ("output.format=csv",),
    ("output.format=null",),
    ("output.bogus=1",),
    # seed
    ("seed=-1",),
    ("seed=18446744073709551617",),
    ("seed=9223372036854775808",),
    ("seed=abc",),
    ("seed=1.5",),
    ("seed=null",),
    ("seed=true",),
    # Hydra syntax and flags
    ("link.distance_km=[1,2",),
    ("link.distance_km=${linspace:0,1",),
    ("link.distance_km='${linspace:0,1'",),
    ("link.distance_km=１",),
    ("link.distance_km",),
    ("=5",),
    ("link.distance_km==5",),
    ("+link.distance_km=5",),
    ("~link.distance_km",),
    ("link.distance_km=${oc.env:QKDJAX_UNSET_VARIABLE}",),
    ("link.distance_km=${bogus:1}",),
    ("link.distance_km=${nope}",),
    ("link.distance_km=interval(0,1)",),
    ("link.distance_km=1,2",),
    ("link.distance_km=range(0,5)",),
    ("--cfg", "bogus"),
    ("--bogus-flag",),
    ("hydra.job.chdir=maybe",),
    # multirun: every job is checked before any runs
    ("--multirun", "detector=ingaas_apd,nope"),
    ("--multirun", "link.distance_km=1,-1"),
    ("-m", "sweep.shard=0,1,2", "sweep.num_shards=2", *ZARR),
    ("--multirun", "link.distance_km=interval(0,1)"),
    ("--multirun", "sweep.shard=range(100000000)", "sweep.num_shards=100000000", *ZARR),
    ("--multirun", "hydra.run.dir=a,b"),
    ("--multirun", "output.name=a,../b"),
    ("--multirun", "seed=0,-1"),
    ("--multirun", "detector=glob(*)", "detector.dead_time_ns=-1"),
    ("--multirun", "sweep=glob(s*)", "link.elevation_deg=100"),
    # subcommands: argument errors and missing files
    ("merge",),
    ("merge", "a.nc"),
    ("merge", "--out", "m.nc"),
    ("merge", "nope.nc", "--out", "m.nc"),
    ("merge", "nope.nc", "--out", "m.nc", "--bogus"),
    ("report",),
    ("report", "nope.nc"),
    ("report", "nope.nc", "--out", "rep"),
    ("report", "file.txt", "--out", "rep", "--target", "abc"),
    ("report", "file.txt", "--out", "rep", "--probability", "abc"),
    ("report", "--out", "rep"),
    ("finalize",),
    ("finalize", "nope.zarr"),
    ("finalize", "--bogus"),
]

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
compile_events: list[str] = []
jax.monitoring.register_event_duration_secs_listener(lambda event, _, **__: event == COMPILE_EVENT and compile_events.append(event))


class Started(BaseException):
    """Raised where Hydra would start (creating its folders) or a chunk would be compiled; not an Exception, so
    that nothing on the way catches it."""


def _refuse_to_start(*args, **kwargs):
    raise Started("bad input reached Hydra's app or the compiler")


@pytest.mark.parametrize("args", CASES, ids=[" ".join(case) for case in CASES])
def test_bad_command_line_is_one_line_before_anything_runs(args, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sweep, "evaluate_chunk", _refuse_to_start)
    monkeypatch.setattr(cli, "_hydra_app", _refuse_to_start)  # every check runs before Hydra creates its run folder
    monkeypatch.setattr("sys.argv", ["qkdjax"])
    (tmp_path / "file.txt").write_text("not a cube\n")
    before = sorted(tmp_path.rglob("*"))
    argv = list(args) if args[0] in cli.SUBCOMMANDS else [*args, f"output.dir={OUT}"]
    if any(a.startswith("output.dir=") for a in args):
        argv = list(args)
    compiles = len(compile_events)
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert exit_.value.code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("qkdjax: error: "), captured.err
    assert captured.out == ""
    assert len(compile_events) == compiles
    assert sorted(tmp_path.rglob("*")) == before


BAD_SWEEP_FILES = {
    "unclosed.yaml": "link:\n  distance_km: [1, 2\n",
    "python_tag.yaml": "link:\n  distance_km: !!python/object/apply:os.getcwd []\n",
    "custom_tag.yaml": "link:\n  distance_km: !km 5\n",
    "list.yaml": "- link\n- detector\n",
    "tabs.yaml": "link:\n\tdistance_km: 5\n",
}


@pytest.mark.parametrize("name", BAD_SWEEP_FILES)
def test_a_broken_sweep_file_is_one_line(name, tmp_path, monkeypatch, capsys):
    sweeps = tmp_path / "sweeps"
    sweeps.mkdir()
    (sweeps / "default.yaml").write_text((cli.SWEEPS_DIR / "default.yaml").read_text())
    (sweeps / name).write_text(BAD_SWEEP_FILES[name])
    monkeypatch.setattr(cli, "SWEEPS_DIR", sweeps)
    monkeypatch.setattr(cli, "_hydra_app", _refuse_to_start)
    cli.register_sweeps.cache_clear()
    try:
        with pytest.raises(SystemExit) as exit_:
            cli.main([f"sweep={name.removesuffix('.yaml')}", f"output.dir={tmp_path / OUT}"])
    finally:
        cli.register_sweeps.cache_clear()  # the next run registers the real sweeps again
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2
    assert len(lines) == 1 and lines[0].startswith(f"qkdjax: error: sweep file {sweeps / name}"), lines
    assert not (tmp_path / OUT).exists()


FAIL_AFTER_HYDRA_STARTED = """
import sys
from pathlib import Path
from qkdjax import cli

def execute(cfg, hydra_cfg, *, write):  # a failure only writing can meet, once Hydra has made its run folder
    raise cli.StoreError("disk full" if Path("out/.hydra/runs").is_dir() else "no run folder")

cli.execute = execute
cli.main(sys.argv[1:])
"""


def test_a_run_that_fails_after_hydra_started_leaves_nothing(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, "-c", FAIL_AFTER_HYDRA_STARTED, f"output.dir={OUT}"], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "qkdjax: error: disk full"
    assert list(tmp_path.iterdir()) == []
