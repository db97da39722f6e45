"""The ComfyUI adapter inside a real ComfyUI (COMFYUI_DIR): loading, dropdowns, nodes, parity.

Skips with the reason when COMFYUI_DIR is unset (fixture `comfyui` in conftest.py).
"""
import math
import os
import subprocess
import sys

import pytest
import torch

import comfy_support as support
from model_sampling_flow import oracles, registry, schedule

SAMPLER_NAMES = [entry.name for entry in registry.SAMPLERS]
SCHEDULER_NAMES = [entry.name for entry in registry.SCHEDULERS]


@pytest.fixture(scope="module")
def package(comfyui):
    return support.load_repo_as_custom_node()


@pytest.fixture(scope="module")
def flow_node(package):
    return package.NODE_CLASS_MAPPINGS["ModelSamplingFlowSDXL"]()


@pytest.fixture(scope="module")
def tiny(package):
    return support.tiny_sdxl()


@pytest.fixture(scope="module")
def analytic(package):
    return support.analytic_sdxl(oracles.gaussian_field(0.5, 0.3))


def sd3(model, shift=3.0):
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3
    return ModelSamplingSD3().patch(model, shift)[0]


def scale(model):
    return model.get_model_object("latent_format").scale_factor


# ---------------------------------------------------------------- entry point

def test_root_init_imports_without_comfyui():
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('flow_pkg', {os.path.join(support.REPO, '__init__.py')!r})\n"
            "module = importlib.util.module_from_spec(spec); sys.modules['flow_pkg'] = module\n"
            "spec.loader.exec_module(module)\n"
            "assert module.NODE_CLASS_MAPPINGS == {} and module.NODE_DISPLAY_NAME_MAPPINGS == {}\n"
            "assert not any(name == 'comfy' or name.startswith('comfy.') for name in sys.modules)\n"
            "print('ok')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", code], cwd="/", env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_comfyui_loads_the_repository_as_a_custom_node(package):
    import nodes
    expected = {"ModelSamplingFlowSDXL", "FlowSchedulerSDXL"} | {
        "Sampler" + "".join(p.capitalize() for p in name.split("_")) for name in SAMPLER_NAMES}
    assert expected <= set(package.NODE_CLASS_MAPPINGS)
    for name in expected:
        assert nodes.NODE_CLASS_MAPPINGS[name] is package.NODE_CLASS_MAPPINGS[name]
        assert nodes.NODE_DISPLAY_NAME_MAPPINGS[name]


# ---------------------------------------------------------------- dropdowns

def test_samplers_and_schedulers_in_comfyui_dropdowns(package):
    import comfy.k_diffusion.sampling as kds
    import comfy.samplers
    import nodes
    # the dropdowns a user opens, read in either node API (V1 lists, V3 ("COMBO", {"options": ...}))
    classes = support.builtin_node_classes("nodes_custom_sampler")
    ksampler_samplers = support.dropdown(nodes.KSampler, "sampler_name")
    ksampler_schedulers = support.dropdown(nodes.KSampler, "scheduler")
    select_samplers = support.dropdown(classes["KSamplerSelect"], "sampler_name")
    basic_schedulers = support.dropdown(classes["BasicScheduler"], "scheduler")
    for name in SAMPLER_NAMES:
        assert name in comfy.samplers.KSAMPLER_NAMES and name in comfy.samplers.SAMPLER_NAMES
        assert name in ksampler_samplers and name in select_samplers
        assert getattr(kds, f"sample_{name}").__name__ == f"sample_{name}"
        assert isinstance(comfy.samplers.sampler_object(name), comfy.samplers.KSAMPLER)
    for name in SCHEDULER_NAMES:
        assert name in comfy.samplers.SCHEDULER_NAMES and name in ksampler_schedulers and name in basic_schedulers
        assert name in comfy.samplers.SCHEDULER_HANDLERS


def test_comfyui_entries_untouched_and_ours_last(package):
    import comfy.samplers
    for names, ours in ((comfy.samplers.SAMPLER_NAMES, SAMPLER_NAMES), (comfy.samplers.KSAMPLER_NAMES, SAMPLER_NAMES),
                        (comfy.samplers.SCHEDULER_NAMES, SCHEDULER_NAMES)):
        assert len(names) == len(set(names))
        builtin = [n for n in names if n not in ours]
        assert names[:len(builtin)] == builtin  # ours appended after ComfyUI's own, order kept
    assert comfy.samplers.KSAMPLER_NAMES[0] == "euler" and "uni_pc_bh2" in comfy.samplers.SAMPLER_NAMES
    assert comfy.samplers.SCHEDULER_HANDLERS["simple"].handler is comfy.samplers.simple_scheduler


def test_registration_is_idempotent(package):
    import comfy.samplers
    before = [list(comfy.samplers.SAMPLER_NAMES), list(comfy.samplers.KSAMPLER_NAMES),
              list(comfy.samplers.SCHEDULER_NAMES), dict(comfy.samplers.SCHEDULER_HANDLERS)]
    package.comfy_nodes.register()
    second = support.load_repo_again()
    second.comfy_nodes.register()
    after = [list(comfy.samplers.SAMPLER_NAMES), list(comfy.samplers.KSAMPLER_NAMES),
             list(comfy.samplers.SCHEDULER_NAMES), dict(comfy.samplers.SCHEDULER_HANDLERS)]
    assert [len(x) for x in after] == [len(x) for x in before]
    assert after[:3] == before[:3] and set(after[3]) == set(before[3])
    assert set(second.NODE_CLASS_MAPPINGS) == set(package.NODE_CLASS_MAPPINGS)


# ---------------------------------------------------------------- the model patch

def test_patch_clones_and_leaves_the_input_model_alone(package, flow_node, tiny):
    original_sampling = tiny.get_model_object("model_sampling")
    original_patches = dict(tiny.object_patches)
    patched = flow_node.patch(tiny, 3.0, "continuous", "static", "ve", latent_scale=0.5, latent_shift=0.1)[0]
    assert patched is not tiny and patched.model is tiny.model
    assert tiny.object_patches == original_patches
    assert tiny.get_model_object("model_sampling") is original_sampling
    assert tiny.get_model_object("latent_format").scale_factor == pytest.approx(0.13025)
    assert patched.get_model_object("model_sampling").view == "ve"
    latent = torch.ones(1, 4, 2, 2)
    assert torch.allclose(patched.get_model_object("latent_format").process_in(latent), (latent - 0.1) * 0.5)


def test_default_view_is_ve_and_isinstance_per_view(package, flow_node, tiny):
    import comfy.model_sampling as cms
    import nodes
    required = nodes.NODE_CLASS_MAPPINGS["ModelSamplingFlowSDXL"].INPUT_TYPES()["required"]
    assert required["view"][1]["default"] == "ve" and required["shift"][1]["default"] == 3.0
    native = flow_node.patch(tiny, 3.0, "continuous", "static", "flow")[0].get_model_object("model_sampling")
    ve = flow_node.patch(tiny, 3.0, "continuous", "static", "ve")[0].get_model_object("model_sampling")
    assert isinstance(native, cms.CONST) and isinstance(native, cms.ModelSamplingDiscreteFlow)
    assert not isinstance(ve, cms.CONST)
    assert float(ve.sigma_max) > 1e3 and float(native.sigma_max) == 1.0


@pytest.mark.parametrize("argument, value", [
    ("shift", 0.0), ("shift", -1.0), ("shift", float("nan")), ("shift", float("inf")),
    ("timestep_mapping", "floor_42"), ("shift_mode", "dynamic"), ("view", "eps"),
    ("latent_scale", 0.0), ("latent_scale", float("nan")), ("latent_shift", float("nan")),
])
def test_bad_patch_inputs_rejected_naming_the_argument(flow_node, tiny, argument, value):
    arguments = dict(shift=3.0, timestep_mapping="continuous", shift_mode="static", view="ve")
    arguments[argument] = value
    before = dict(tiny.object_patches)
    with pytest.raises(ValueError, match=argument):
        flow_node.patch(tiny, **arguments)
    assert tiny.object_patches == before


def test_resolution_shift_follows_the_latent(flow_node, tiny):
    def shift_for(size):
        latent = {"samples": torch.zeros(1, 4, size, size)}
        return flow_node.patch(tiny, 3.0, "continuous", "resolution", "ve", latent=latent)[0] \
            .get_model_object("model_sampling").shift
    assert shift_for(128) == pytest.approx(schedule.latent_resolution_shift((1, 4, 128, 128)))
    assert shift_for(256) == pytest.approx(2 * shift_for(128))
    with pytest.raises(ValueError, match="latent"):
        flow_node.patch(tiny, 3.0, "continuous", "resolution", "ve")


@pytest.mark.parametrize("mapping", ["floor_999", "floor_1000", "continuous"])
def test_the_unet_receives_the_trainers_timestep(flow_node, mapping):
    model = support.analytic_sdxl()
    unet = model.model.diffusion_model
    patched = flow_node.patch(model, 3.0, mapping, "static", "ve")[0]
    model_sampling = patched.get_model_object("model_sampling")
    sigmas = model_sampling.sigmas.new_tensor([float(s) for s in
                                               __import__("comfy.samplers").samplers.calculate_sigmas(model_sampling, "simple", 6)])
    support.sample(patched, "euler", "simple", steps=6)
    # the flow view's numbers for the same table entries (exactly, top entry included)
    from model_sampling_flow.model_sampling import FlowModelSampling
    flow_view = FlowModelSampling(shift=3.0, timestep_mapping=mapping)
    flow_sigmas = __import__("comfy.samplers").samplers.calculate_sigmas(flow_view, "simple", 6)
    assert len(flow_sigmas) == len(sigmas)
    expected = [float(t) for t in flow_view.timestep(flow_sigmas[:-1])]
    assert unet.timesteps_seen == pytest.approx(expected, abs=1e-3)
    if mapping != "continuous":
        assert all(t == int(t) for t in unet.timesteps_seen)


# ---------------------------------------------------------------- parity with ModelSamplingSD3

def test_native_view_reproduces_model_sampling_sd3(flow_node, tiny):
    import comfy.samplers
    reference = sd3(tiny)
    ours = flow_node.patch(tiny, 3.0, "continuous", "static", "flow")[0]
    a, b = reference.get_model_object("model_sampling"), ours.get_model_object("model_sampling")
    assert torch.equal(a.sigmas, b.sigmas)
    for scheduler in comfy.samplers.SCHEDULER_NAMES:
        assert torch.allclose(comfy.samplers.calculate_sigmas(a, scheduler, 12),
                              comfy.samplers.calculate_sigmas(b, scheduler, 12), atol=1e-6, rtol=0), scheduler
    worst = 0.0
    for sampler in ("euler", "dpmpp_2m_sde", "flow_multistep"):
        expected = support.sample(reference, sampler, "simple", steps=6, seed=3, cfg=4.0)
        got = support.sample(ours, sampler, "simple", steps=6, seed=3, cfg=4.0)
        worst = max(worst, float((expected - got).abs().max()))
    assert worst <= 1e-6


# ---------------------------------------------------------------- SAMPLER / SIGMAS nodes

def test_sampler_nodes_expose_the_core_options(package):
    for entry in registry.SAMPLERS:
        node = next(cls for cls in package.NODE_CLASS_MAPPINGS.values() if getattr(cls, "registry_name", None) == entry.name)
        inputs = node.INPUT_TYPES()["required"]
        assert set(inputs) == {option.name for option in entry.widget_options}
        sampler = node().get_sampler(**{name: spec[1]["default"] for name, spec in inputs.items()})[0]
        assert sampler.sampler_function.__name__ == f"sample_{entry.name}"


def test_sampler_node_rejects_bad_options(package):
    node = package.NODE_CLASS_MAPPINGS["SamplerFlowEulerAncestral"]()
    with pytest.raises(ValueError, match="eta"):
        node.get_sampler(eta=-1.0, s_noise=1.0)
    with pytest.raises(ValueError, match="s_noise"):
        node.get_sampler(eta=1.0, s_noise=float("nan"))
    with pytest.raises(ValueError, match="order"):
        package.NODE_CLASS_MAPPINGS["SamplerFlowMultistep"]().get_sampler(order=7)


def test_flow_scheduler_node(package, flow_node, tiny):
    from model_sampling_flow import schedulers
    scheduler = package.NODE_CLASS_MAPPINGS["FlowSchedulerSDXL"]()
    for view in ("ve", "flow"):
        model = flow_node.patch(tiny, 3.0, "continuous", "static", view)[0]
        sigmas = scheduler.get_sigmas(model, "flow_shift", 10, 1.0)[0]
        assert torch.equal(sigmas, schedulers.flow_shift(model.get_model_object("model_sampling"), 10))
        assert torch.equal(scheduler.get_sigmas(model, "flow_shift", 4, 0.5)[0], schedulers.flow_shift(
            model.get_model_object("model_sampling"), 8)[-5:])
    with pytest.raises(ValueError, match="scheduler"):
        scheduler.get_sigmas(model, "flow_nonexistent", 10, 1.0)
    with pytest.raises(ValueError, match="rectified-flow"):
        scheduler.get_sigmas(tiny, "flow_shift", 10, 1.0)  # an EPS model: no flow time to shift


def test_flow_shift_in_ksampler_matches_sd3_flow_time(flow_node, tiny):
    import comfy.samplers
    native = flow_node.patch(tiny, 3.0, "continuous", "static", "flow")[0].get_model_object("model_sampling")
    ve = flow_node.patch(tiny, 3.0, "continuous", "static", "ve")[0].get_model_object("model_sampling")
    flow = comfy.samplers.calculate_sigmas(native, "flow_shift", 8)
    assert torch.allclose(comfy.samplers.calculate_sigmas(sd3(tiny).get_model_object("model_sampling"), "flow_shift", 8), flow)
    from model_sampling_flow import views
    assert torch.allclose(views.sigma_from_ve(comfy.samplers.calculate_sigmas(ve, "flow_shift", 8).double())[1:],
                          flow[1:].double(), atol=1e-6)


def test_sampler_custom_with_our_nodes_in_the_ve_view(package, flow_node, analytic):
    import comfy.sample
    field = oracles.gaussian_field(0.5, 0.3)
    model = flow_node.patch(analytic, 3.0, "continuous", "static", "ve")[0]
    sigmas = package.NODE_CLASS_MAPPINGS["FlowSchedulerSDXL"]().get_sigmas(model, "flow_shift", 64, 1.0)[0]
    sampler = package.NODE_CLASS_MAPPINGS["SamplerFlowMultistep"]().get_sampler(order=3)[0]
    latent = torch.zeros(1, 4, 16, 16)
    noise = comfy.sample.prepare_noise(latent, 5)
    positive, negative = support.sdxl_conds()
    out = comfy.sample.sample_custom(model, noise, 1.0, sampler, sigmas, positive, negative, latent, seed=5) * scale(model)
    cap = model.get_model_object("model_sampling").sigma_cap
    exact = field.transport(noise.double() * cap, cap, 0.0).float()
    assert float((out - exact).abs().max()) < 5e-3  # third order, 64 steps: ~1.5e-3 measured


@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
def test_flow_samplers_agree_across_views(flow_node, analytic, sampler):
    """Under the VE view, the native view and ModelSamplingSD3 a flow sampler takes the same steps."""
    runs = {}
    for label, model in (("ve", flow_node.patch(analytic, 3.0, "continuous", "static", "ve")[0]),
                         ("flow", flow_node.patch(analytic, 3.0, "continuous", "static", "flow")[0]),
                         ("sd3", sd3(analytic))):
        runs[label] = support.sample(model, sampler, "flow_shift", steps=24, seed=2, shape=(1, 4, 16, 16)) * scale(model)
    assert float((runs["flow"] - runs["sd3"]).abs().max()) <= 1e-6
    # the VE view starts at the capped sigma (under 1e-4 of x0 missing); noise is drawn identically
    assert float((runs["ve"] - runs["flow"]).abs().max()) < 2e-3


# ---------------------------------------------------------------- img2img, callback, progress, interrupt

def test_img2img_in_the_ve_view_is_exact_transport(flow_node, analytic):
    import comfy.sample
    field = oracles.gaussian_field(0.5, 0.3)
    model = flow_node.patch(analytic, 3.0, "continuous", "static", "ve")[0]
    image = field.sample((1, 4, 16, 16), generator=torch.Generator().manual_seed(0)) / scale(model)
    noise = comfy.sample.prepare_noise(image, 9)
    out = support.sample(model, "flow_multistep", "simple", steps=40, seed=9, latent=image, denoise=0.5,
                         noise=noise) * scale(model)
    import comfy.samplers
    ms = model.get_model_object("model_sampling")
    start_ve = float(comfy.samplers.calculate_sigmas(ms, "simple", 80)[-41])
    start = start_ve / (1 + start_ve)
    x_start = (1 - start) * image.double() * scale(model) + start * noise.double()
    assert float((out - field.transport(x_start, start, 0.0).float()).abs().max()) < 2e-3


def test_callback_progress_and_interrupt(flow_node, analytic):
    """Progress reaches ComfyUI's progress hook and Cancel (interrupt) stops sampling with no result.

    ComfyUI v0.33.0 throttles progress reports (first and last always, others >= 100 ms apart),
    so the test asserts what a user sees in every version: reports count up to the total, and a
    Cancel requested during sampling raises at the next report instead of returning an image.
    """
    import comfy.model_management
    import comfy.utils
    import latent_preview
    model = flow_node.patch(analytic, 3.0, "continuous", "static", "ve")[0]
    seen = []
    cancel_at = []

    def hook(value, total, preview, prompt_id=None, node_id=None):
        seen.append((value, total))
        comfy.model_management.throw_exception_if_processing_interrupted()   # main.py's hook does this
        if value in cancel_at:
            comfy.model_management.interrupt_current_processing(True)

    saved = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(hook)
    try:
        out = support.sample(model, "flow_euler_ancestral", "simple", steps=10,
                             callback=latent_preview.prepare_callback(model, 10))
        values = [value for value, _ in seen]
        assert values[0] == 1 and values[-1] == 10 and values == sorted(set(values)), seen
        assert {total for _, total in seen} == {10} and bool(torch.isfinite(out).all())
        seen.clear()
        cancel_at.append(1)
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            support.sample(model, "flow_euler_ancestral", "simple", steps=10,
                           callback=latent_preview.prepare_callback(model, 10))
    finally:
        comfy.utils.set_progress_bar_global_hook(saved)
        comfy.model_management.interrupt_current_processing(False)
    assert seen[0] == (1, 10) and len(seen) >= 2 and seen[-1][0] <= 10, seen

    steps = []
    support.sample(model, "flow_heun", "simple", steps=5,
                   callback=lambda i, x0, x, total: steps.append((i, total, tuple(x0.shape), bool(torch.isfinite(x).all()))))
    assert steps == [(i, 5, (1, 4, 8, 8), True) for i in range(5)]


def test_pyproject_is_read_by_comfyuis_config_parser(package):
    from comfy_config import config_parser
    config = config_parser.extract_node_configuration(support.REPO)
    assert config.project.name == "model-sampling-flow"
    assert config.tool_comfy.publisher_id and config.tool_comfy.display_name
    # unpublished: no placeholder repository URL that would send users nowhere
    assert not config.project.urls.repository


def test_a_fresh_comfyui_shows_the_nodes_and_dropdown_entries(comfyui, tmp_path):
    """A copy of ComfyUI with the repository in custom_nodes/, started the way main.py starts it."""
    info, log = support.fresh_comfyui_with_repo(os.environ["COMFYUI_DIR"], str(tmp_path))
    # (some of ComfyUI's own extras may fail here for want of packages their models need; ours must not)
    failures = [line for line in log.splitlines() if "IMPORT FAILED" in line or "Cannot import" in line]
    assert not any("model-sampling-flow" in line for line in failures), failures
    assert any(path.endswith("model-sampling-flow") for path in info["loaded"])
    assert {"ModelSamplingFlowSDXL", "FlowSchedulerSDXL", "SamplerFlowEuler", "SamplerFlowMultistep",
            "KSampler", "SamplerCustom", "ModelSamplingSD3"} <= set(info["nodes"])
    assert info["display"]["ModelSamplingFlowSDXL"] == "Model Sampling Flow (RF SDXL)"
    for name in SAMPLER_NAMES:
        assert info["ksampler_samplers"].count(name) == 1 and name in info["select_samplers"]
    assert info["ksampler_samplers"][:2] == ["euler", "euler_cfg_pp"]
    for name in SCHEDULER_NAMES:
        assert info["ksampler_schedulers"].count(name) == 1 and info["scheduler_schedulers"].count(name) == 1
    assert info["ksampler_schedulers"][0] == "simple"


def test_latent_scale_reaches_sampling(flow_node, analytic):
    """With latent_scale 1 the sampled latent is in the model's own units (mean 0.5, std 0.3)."""
    model = flow_node.patch(analytic, 3.0, "continuous", "static", "ve", latent_scale=1.0)[0]
    out = support.sample(model, "flow_multistep", "flow_shift", steps=32, seed=4, shape=(1, 4, 32, 32))
    assert abs(float(out.mean()) - 0.5) < 0.02 and abs(float(out.std()) - 0.3) < 0.02


@pytest.mark.parametrize("sampler", ["flow_euler", "flow_sde"])
def test_inpainting_keeps_the_unmasked_latent_in_the_ve_view(flow_node, analytic, sampler):
    import comfy.sample
    model = flow_node.patch(analytic, 3.0, "continuous", "static", "ve")[0]
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :, 4:] = 1.0  # repaint the right half only
    noise = comfy.sample.prepare_noise(latent, 3)
    positive, negative = support.sdxl_conds(tokens=1)
    out = comfy.sample.sample(model, noise, 12, 1.0, sampler, "simple", positive, negative, latent,
                              noise_mask=mask, disable_pbar=True, seed=3)
    assert torch.allclose(out[..., :4], latent[..., :4], atol=1e-4)
    assert not torch.allclose(out[..., 4:], latent[..., 4:], atol=1e-2)
