"""The CPU demo: its exact model, its printed verdicts, and the PNG it writes."""
import math
import os
import struct
import subprocess
import sys
import zlib

import pytest
import torch

from model_sampling_flow import demo, picture
from model_sampling_flow.oracles import GaussianImageField, draw_scene
from model_sampling_flow.samplers import sample_flow_heun
from model_sampling_flow.schedule import time_shift

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS = (8, 24)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return demo.run(out_dir=str(out), steps=STEPS, batch=8, seed=0, progress=False, picture_steps=24)


def printed_rows(table_text, section):
    """{name: (verdict, [numbers])} parsed from one section of the printed table."""
    block = table_text.split("\n\n")[section]
    rows = {}
    for line in block.splitlines():
        parts = line.split()
        for index, word in enumerate(parts):
            if word in ("right", "WRONG"):
                rows[" ".join(parts[:index])] = (word, [float(v) for v in parts[index + 1:index + 1 + len(STEPS)]])
                break
    return rows


def test_field_is_the_exact_denoiser():
    field = GaussianImageField(draw_scene(seed=3))
    x = torch.randn(2, 3, 32, 32)
    # sigma = 1: only the data mean is known; sigma = 0: x is already data
    assert torch.allclose(field(x, torch.ones(2)), field.from_dct(field.mean).float().expand(2, -1, -1, -1),
                          atol=1e-5)
    assert torch.allclose(field(x, torch.zeros(2)), x, atol=1e-5)
    # a fine Heun solve of the flow ODE lands on the closed-form endpoint
    sigmas = torch.tensor([time_shift(3.0, 1 - k / 400) for k in range(401)])
    solved = sample_flow_heun(field, x.clone(), sigmas, disable=True)
    assert float((solved - field.endpoint(x)).abs().max()) < 0.01


def test_exact_samples_score_near_zero(result):
    reference = result["reference"]
    assert 0 < reference["min"] <= reference["mean"] <= reference["max"] < 0.1
    assert set(result["pictures"]) == set(result["spectrum"])
    # exact batches' band amplitudes sit on the data's
    assert all(abs(a / t - 1) < 0.25 for a, t in result["exact_bands"])


def test_caption_figures_are_the_tables(result):
    # the printed floor is the one the picture states, and no right sampler is called better
    # than exact by more than the spread of exact batches
    reference = result["reference"]
    assert f"{reference['mean']:.4f} on average" in result["table_text"]
    for name, by_steps in result["spectrum"].items():
        if result["right"][name]:
            assert min(by_steps.values()) > reference["min"] - 0.02, name


def test_printed_table_right_samplers_beat_every_wrong_way(result):
    rows = printed_rows(result["table_text"], 1)
    right = {n: v for n, (verdict, v) in rows.items() if verdict == "right"}
    wrong = {n: v for n, (verdict, v) in rows.items() if verdict == "WRONG"}
    assert {"flow_euler", "flow_heun", "flow_euler_ancestral", "flow_sde", "flow_multistep"} <= set(right)
    assert set(wrong) == {"as SDXL eps model", "as SDXL v model", "VE Euler a on flow x"}
    at_24 = STEPS.index(24)
    worst_right = max(v[at_24] for v in right.values())
    best_wrong = min(v[at_24] for v in wrong.values())
    assert best_wrong > 2 * worst_right, (worst_right, best_wrong)
    # more steps help every right deterministic sampler and no wrong one: the wrong ways are biased,
    # not coarse. A stochastic sampler's figure is one batch of 8 and carries the spread of exact
    # batches (0.01 to 0.17 here), as large as its 8 -> 24 step gain once it is near the floor at 8
    # steps; its convergence in distribution is tested in test_flow_sde.py and test_samplers.py
    for name, values in right.items():
        if not result["stochastic"][name]:
            assert values[1] < values[0], name
    for name, values in wrong.items():
        assert values[1] >= 0.8 * values[0], name


def test_printed_endpoint_table_converges_only_for_right_samplers(result):
    rows = printed_rows(result["table_text"], 2)
    assert set(rows) == {"flow_pc", "flow_euler", "flow_heun", "flow_multistep", "as SDXL eps model", "as SDXL v model"}
    for name, (verdict, (coarse, fine)) in rows.items():
        if verdict == "right":
            assert fine < coarse and fine < 0.03, name
        else:
            assert fine > 0.1, name


def test_ve_view_euler_a_is_the_flow_ancestral_sampler(result):
    # the same noise draws through k-diffusion's VE Euler a on the VE view and through the flow
    # ancestral sampler give the same images: the VE view is an exact change of variables
    assert torch.allclose(result["pictures"]["euler_a in VE view"], result["pictures"]["flow_euler_ancestral"],
                          atol=1e-3)


def read_png(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = {}, 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        kind, body = data[offset + 4:offset + 8], data[offset + 8:offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length:offset + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        chunks.setdefault(kind, b"")
        chunks[kind] += body
        offset += 12 + length
    width, height, depth, colour_type = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    return width, height, depth, colour_type, zlib.decompress(chunks[b"IDAT"]), b"IEND" in chunks


def test_png_is_valid_and_shows_every_method(result):
    width, height, depth, colour_type, raw, ended = read_png(result["png_path"])
    assert (depth, colour_type, ended) == (8, 2, True)
    assert len(raw) == height * (1 + 3 * width)
    rows_of_tiles = 2 + len(result["pictures"])  # an exact row above each section
    assert height >= rows_of_tiles * 64 and width >= 8 * 64


def test_picture_splits_deterministic_from_stochastic(result):
    # deterministic rows are compared tile by tile; stochastic ones by statistics
    deterministic = {n for n, s in result["stochastic"].items() if not s}
    assert deterministic == set(result["endpoint"])
    assert {"flow_euler_ancestral", "flow_sde", "euler_a in VE view", "VE Euler a on flow x"} <= \
        {n for n, s in result["stochastic"].items() if s}
    # the wrong ancestral sampler's coarse band is far too strong, the right ones' within 25 %
    coarse = {n: bands[0][0] / bands[0][1] for n, bands in result["bands"].items()}
    assert coarse["VE Euler a on flow x"] > 2
    assert 0.75 < coarse["flow_sde"] < 1.25
    table = open(result["table_path"]).read()
    assert table.strip() == result["table_text"].strip()


def test_font_covers_every_label(result):
    labels = list(result["pictures"]) + ["exact (ODE endpoint)", "right  err 0.123", "WRONG",
                                         "python -m model_sampling_flow demo"]
    missing = {c for label in labels for c in label.upper() if c not in picture.FONT}
    assert missing == set()


@pytest.mark.parametrize("kwargs, name", [({"steps": (0,)}, "steps"), ({"steps": ()}, "steps"),
                                           ({"batch": 0}, "batch"), ({"picture_steps": 2.5}, "picture_steps"),
                                           ({"seed": -1}, "seed")])
def test_run_validates_arguments(kwargs, name):
    threads = torch.get_num_threads()
    with pytest.raises(ValueError, match=name):
        demo.run(write_files=False, progress=False, **kwargs)
    assert torch.get_num_threads() == threads  # the demo's one-thread setting is undone


def test_write_png_validates_canvas(tmp_path):
    with pytest.raises(ValueError, match="canvas"):
        picture.write_png(str(tmp_path / "x.png"), torch.zeros(4, 4, 3))


def test_cli_demo_runs_and_prints_the_table(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    completed = subprocess.run([sys.executable, "-m", "model_sampling_flow", "demo", "--out", str(tmp_path),
                                "--steps", "4,8", "--batch", "2"], capture_output=True, text=True, cwd=ROOT, env=env)
    assert completed.returncode == 0, completed.stderr
    assert "flow_euler" in completed.stdout and "WRONG" in completed.stdout
    assert "done" in completed.stderr  # the progress bar
    assert os.path.getsize(tmp_path / "demo.png") > 1000
    bad = subprocess.run([sys.executable, "-m", "model_sampling_flow", "demo", "--steps", "four"],
                         capture_output=True, text=True, cwd=ROOT, env=env)
    assert bad.returncode == 1 and "--steps" in bad.stderr and "Traceback" not in bad.stderr


def test_sdxl_schedule_is_sdxls():
    sigmas = demo.sdxl_discrete_sigmas()
    # SDXL's well-known range: sigma_min ~ 0.0292, sigma_max ~ 14.61
    assert math.isclose(float(sigmas[0]), 0.0292, rel_tol=0.01)
    assert math.isclose(float(sigmas[-1]), 14.61, rel_tol=0.01)
