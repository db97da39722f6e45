"""ComfyUI at the step counts people use and next to ComfyUI's newest nodes.

Inside the real ComfyUI at COMFYUI_DIR (skips without it), with an SDXL model whose UNet returns
the exact velocity of an RF field: every sampler x scheduler ComfyUI lists at 20 and 28 steps
meets the bar of tests/comfyui/comfy_practical_steps.py in the node's default configuration, and at CFG 5
(negative prompt answered by a second field) every sampler x four schedulers does; other models
keep ComfyUI's schedules bit for bit; float32 table ends above 1 are accepted; ModelNoiseScale and
the nodes that rebuild model sampling compose with ours.
"""
import types

import pytest
import torch

import comfy_practical_steps as practical
import comfy_support as support
from model_sampling_flow import oracles, registry

FIELD = oracles.gaussian_field(0.5, 0.3)


@pytest.fixture(scope="module")
def package(comfyui):
    return support.load_repo_as_custom_node()


@pytest.fixture(scope="module")
def kinds():
    return {}  # sampler -> deterministic / stochastic, measured once for the module


def our_node(package):
    return package.NODE_CLASS_MAPPINGS["ModelSamplingFlowSDXL"]()


# ---------------------------------------------------------------- the bar, every pair

@pytest.mark.parametrize("field", sorted(practical.FIELDS))
@pytest.mark.parametrize("steps", practical.STEPS)
def test_every_sampler_and_scheduler_meets_the_bar(package, kinds, field, steps):
    import comfy.samplers
    samplers, schedulers = list(comfy.samplers.KSampler.SAMPLERS), list(comfy.samplers.KSampler.SCHEDULERS)
    assert len(samplers) >= 45 and "flow_euler" in samplers and "dpm_adaptive" in samplers
    assert {"simple", "karras", "linear_quadratic", "kl_optimal", "flow_shift"} <= set(schedulers)
    rows = practical.compare(package, field, steps, samplers, schedulers, kinds=kinds)
    assert len(rows) == len(samplers) * len(schedulers)
    refused = [row for row in rows if "refused" in row]
    assert refused == []
    failing = [practical.format_row(row) for row in rows if not row["passes"] and not row["excluded"]]
    assert failing == []
    # the deterministic ones the issue names, now as accurate as under ModelSamplingSD3
    named = {(row["sampler"], row["scheduler"]): row for row in rows}
    for pair in (("uni_pc", "karras"), ("heun", "beta"), ("heun", "normal"), ("dpmpp_2m", "simple"),
                 ("dpm_adaptive", "simple")):
        assert named[pair]["ours"]["rmse"] <= named[pair]["reference"]["rmse"] + 1e-4, named[pair]
    assert named[("euler", "linear_quadratic")]["ours"]["std"] > 0.1  # not the flat image of the VE range


CFG = 5.0
CFG_SCHEDULERS = ("simple", "karras", "beta", "flow_pc")


def test_every_sampler_meets_the_bar_at_cfg_5(package, kinds):
    """ComfyUI's CFG code (cfg_function, the CFG++ samplers' post-CFG uncond) with our node: every sampler x
    four schedulers, 20 steps, the two_modes pair; the full sweep is benchmarks/bench_practical_steps_comfyui.py."""
    import comfy.samplers
    samplers = list(comfy.samplers.KSampler.SAMPLERS)
    assert "euler_cfg_pp" in samplers and "flow_euler" in samplers
    rows = practical.compare(package, "two_modes", 20, samplers, list(CFG_SCHEDULERS), kinds=kinds, cfg=CFG)
    assert len(rows) == len(samplers) * len(CFG_SCHEDULERS)
    assert [row for row in rows if "refused" in row] == []
    failing = [practical.format_row(row) for row in rows if not row["passes"] and not row["excluded"]]
    assert failing == []
    # the negative prompt reached the network and was answered by the uncond field in every pair
    assert [practical.format_row(row) for row in rows if row["negative_rows"] < 1] == []
    named = {(row["sampler"], row["scheduler"]): row for row in rows}
    euler = named[("euler", "simple")]
    assert euler["negative_rows"] == 20  # one uncond row per step: ComfyUI did not skip the negative prompt
    # guidance changes the image: the guided cond's major mode (-1) wins over the unguided mixture
    assert euler["ours"]["mean"] < -0.7 and euler["ours"]["rmse"] < 0.1, euler


def test_sampler_view_table_matches_what_each_sampler_does(package, kinds):
    """Every ComfyUI sampler is classified, and 'flow' exactly when it is deterministic."""
    import comfy.samplers
    sampler_views = package.comfy_nodes.sampler_views
    _, sd3 = practical.models(package, FIELD)
    noise = practical._noise()
    ours = {entry.name for entry in registry.SAMPLERS}
    unclassified = [name for name in comfy.samplers.KSampler.SAMPLERS
                    if name not in ours and name not in sampler_views.SAMPLER_VIEWS]
    assert unclassified == []
    wrong = {}
    for name in comfy.samplers.KSampler.SAMPLERS:
        if name in ours:
            continue
        if name not in kinds:
            kinds[name] = "deterministic" if practical.is_deterministic(sd3, name, noise) else "stochastic"
        view = sampler_views.sampler_view(comfy.samplers.sampler_object(name))
        if (view == "flow") != (kinds[name] == "deterministic"):
            wrong[name] = (view, kinds[name])
    assert wrong == {}


def test_deterministic_samplers_take_model_sampling_sd3_steps(package):
    """In the default view a deterministic sampler's image equals ModelSamplingSD3's (float rounding aside)."""
    ours, sd3 = practical.models(package, FIELD)
    noise = practical._noise()
    for sampler, scheduler in (("euler", "karras"), ("uni_pc", "karras"), ("dpm_adaptive", "simple"),
                               ("heun", "beta"), ("euler_cfg_pp", "normal"), ("ddim", "ddim_uniform")):
        steps_seen = []  # previews: ComfyUI's callback gets every step, whatever the sampler reports
        a = support.sample(ours, sampler, scheduler, steps=20, seed=practical.SEED, latent=torch.zeros_like(noise),
                           noise=noise, callback=lambda step, denoised, x, total: steps_seen.append(step))
        b = practical.run_ksampler(sd3, sampler, scheduler, 20, noise)
        assert float((a - b).abs().max()) < 2e-3, (sampler, scheduler)  # latent units (x0 / 0.13)
        assert steps_seen and steps_seen[0] == 0, (sampler, scheduler)


def test_schedules_span_the_flow_range_in_the_ve_view(package):
    import comfy.samplers
    ours, sd3 = practical.models(package, FIELD)
    ve = ours.get_model_object("model_sampling")
    for scheduler in comfy.samplers.KSampler.SCHEDULERS:
        sigmas = comfy.samplers.calculate_sigmas(ve, scheduler, 20)
        flow = comfy.samplers.calculate_sigmas(sd3.get_model_object("model_sampling"), scheduler, 20)
        top = flow >= 1.0
        assert torch.equal(sigmas[top], torch.full_like(sigmas[top], float(ve.sigma_max))), scheduler  # the VE cap
        assert torch.allclose((sigmas / (1 + sigmas.double()))[~top], flow[~top].double(), rtol=1e-6, atol=1e-7), scheduler


def test_other_models_keep_comfyuis_schedules_bit_for_bit(package):
    import comfy.samplers
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3
    original = comfy.samplers.calculate_sigmas.__wrapped__
    base = support.analytic_sdxl(FIELD)
    flow_view = our_node(package).patch(base, 3.0, "continuous", "static", "flow")[0]
    ve_view = our_node(package).patch(base, 3.0, "continuous", "static", "ve")[0]
    key = package.comfy_nodes.sampler_views.WRAPPER_KEY
    assert key in repr(ve_view.wrappers) and key not in repr(base.wrappers) + repr(flow_view.wrappers)
    for model in (base, ModelSamplingSD3().patch(base, 3.0)[0], flow_view):
        model_sampling = model.get_model_object("model_sampling")
        for scheduler in comfy.samplers.KSampler.SCHEDULERS:
            outcomes = []
            for calculate in (comfy.samplers.calculate_sigmas, original):
                try:
                    outcomes.append(calculate(model_sampling, scheduler, 13))
                except ValueError as error:  # flow_shift on a non-flow model: refused alike
                    outcomes.append(str(error))
            same = torch.equal(*outcomes) if isinstance(outcomes[0], torch.Tensor) else outcomes[0] == outcomes[1]
            assert same, (type(model_sampling).__name__, scheduler)


# ---------------------------------------------------------------- item 3: float32 table ends

WIDGET_SHIFTS = [round(k * 0.01, 2) for k in range(1, 10001)]  # ours and ModelSamplingSD3: 0.01..100 by 0.01


class _Denoiser:
    """What ComfyUI hands a sampler, reduced to what ours read: a call and the model sampling."""

    def __init__(self, model_sampling, field):
        self.inner_model = types.SimpleNamespace(inner_model=types.SimpleNamespace(model_sampling=model_sampling))
        self.ve = getattr(model_sampling, "view", "flow") == "ve"
        self.field = field

    def __call__(self, x, sigma, **extra_args):
        if self.ve:
            return self.field(x / (1 + sigma.reshape(-1, 1, 1, 1)), sigma / (1 + sigma))
        return self.field(x, sigma)


def test_float32_table_ends_are_accepted_for_every_widget_shift(package):
    import comfy.model_sampling
    import comfy.samplers
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3
    node = our_node(package)
    over_one = []
    for shift in WIDGET_SHIFTS:
        reference = comfy.model_sampling.ModelSamplingDiscreteFlow()
        reference.set_parameters(shift=shift, multiplier=1000)
        if float(reference.sigmas.max()) > 1.0:
            over_one.append(shift)
    assert 4.07 in over_one and len(over_one) == 99  # docs/comfyui.md quotes both
    base = support.analytic_sdxl(FIELD)
    functions = {entry.name: package.comfy_nodes.registration.sampler_function(entry.name) for entry in registry.SAMPLERS}
    x = torch.randn(1, 4, 2, 2, generator=torch.Generator().manual_seed(0))
    for shift in over_one:
        models = {"sd3": ModelSamplingSD3().patch(base, shift)[0].get_model_object("model_sampling")}
        for view in ("flow", "ve"):
            models[view] = node.patch(base, shift, "continuous", "static", view)[0].get_model_object("model_sampling")
        for view, model_sampling in models.items():
            for scheduler in comfy.samplers.KSampler.SCHEDULERS:
                sigmas = comfy.samplers.calculate_sigmas(model_sampling, scheduler, 3)
                start = model_sampling.noise_scaling(sigmas[0], x, torch.zeros_like(x))
                for name, function in functions.items():
                    out = function(_Denoiser(model_sampling, FIELD), start, sigmas, extra_args={"seed": 0}, disable=True)
                    assert torch.isfinite(out).all(), (shift, view, scheduler, name)
    # a VE sigma handed to a flow sampler is still an error
    flow = node.patch(base, 3.0, "continuous", "static", "flow")[0].get_model_object("model_sampling")
    with pytest.raises(ValueError, match="sigmas"):
        functions["flow_euler"](_Denoiser(flow, FIELD), x, torch.tensor([2.0, 0.0]), disable=True)


def test_ksampler_at_shift_4_07_in_the_flow_view(package):
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3
    base = support.analytic_sdxl(FIELD)
    for model in (our_node(package).patch(base, 4.07, "continuous", "static", "flow")[0],
                  ModelSamplingSD3().patch(base, 4.07)[0]):
        for sampler in ("flow_euler", "flow_multistep", "flow_sde"):
            out = support.sample(model, sampler, "simple", steps=8, shape=(1, 4, 8, 8))
            assert torch.isfinite(out).all()
            assert abs(float(out.mean()) * 0.13025 - FIELD.mean) < 0.1


# ---------------------------------------------------------------- newer nodes

def _node_class(name):
    import comfy_extras.nodes_model_advanced as advanced
    node = getattr(advanced, name, None)
    if node is None:
        pytest.skip(f"this ComfyUI has no {name} node")
    return node


@pytest.mark.parametrize("view", ["ve", "flow"])
def test_model_noise_scale_after_ours(package, view):
    noise_scale = _node_class("ModelNoiseScale")
    base = support.analytic_sdxl(FIELD)
    ours = our_node(package).patch(base, 4.0, "floor_1000", "static", view)[0]
    before = ours.get_model_object("model_sampling")
    rebuilt_model = noise_scale().patch(ours, 1.0)[0]
    rebuilt = rebuilt_model.get_model_object("model_sampling")
    assert rebuilt is not before
    assert (type(rebuilt), rebuilt.view, rebuilt.shift, rebuilt.timestep_mapping) == \
        (type(before), before.view, before.shift, before.timestep_mapping)
    assert torch.equal(rebuilt.sigmas, before.sigmas)
    noise = practical._noise()
    for sampler in ("euler", "euler_ancestral"):
        assert torch.equal(practical.run_ksampler(rebuilt_model, sampler, "karras", 6, noise),
                           practical.run_ksampler(ours, sampler, "karras", 6, noise)), sampler
    with pytest.raises(ValueError, match="noise_scale must be 1.*RF SDXL.*8.0|noise_scale must be 1.*8.0"):
        noise_scale().patch(ours, 8.0)
    assert ours.get_model_object("model_sampling") is before


@pytest.mark.parametrize("node_name,arguments", [
    ("ModelSamplingSD3", (3.0,)),
    ("ModelSamplingAuraFlow", (1.73,)),
    ("ModelSamplingDiscrete", ("eps", False)),
    ("ModelSamplingContinuousEDM", ("edm", 120.0, 0.002)),
])
def test_nodes_that_replace_model_sampling_after_ours(package, node_name, arguments):
    """After ours they win, exactly as on the bare model: our hook and wrapper stay out of the way."""
    node = _node_class(node_name)()
    base = support.tiny_sdxl()  # a network finite for any model sampling (the exact velocity is not)
    noise = practical._noise()
    after_ours = node.patch(our_node(package).patch(base, 3.0, "continuous", "static", "ve")[0], *arguments)[0]
    alone = node.patch(base, *arguments)[0]
    for sampler, scheduler in (("euler", "karras"), ("dpmpp_2m", "simple"), ("euler_ancestral", "normal")):
        assert torch.equal(practical.run_ksampler(after_ours, sampler, scheduler, 6, noise),
                           practical.run_ksampler(alone, sampler, scheduler, 6, noise)), (sampler, scheduler)


def test_rescale_cfg_after_ours(package):
    """RescaleCFG reads sigma and x below the sampler, where our VE view stays for every sampler."""
    rescale = _node_class("RescaleCFG")()
    base = support.tiny_sdxl()  # a prompt-dependent network, so cond != uncond and the rescale acts
    ours = our_node(package).patch(base, 3.0, "continuous", "static", "ve")[0]
    rescaled = rescale.patch(ours, 0.7)[0]
    noise = practical._noise()
    for sampler in ("euler", "euler_ancestral", "dpmpp_2m_sde"):
        out = support.sample(rescaled, sampler, "karras", steps=6, cfg=4.0, noise=noise, latent=torch.zeros_like(noise))
        plain = support.sample(ours, sampler, "karras", steps=6, cfg=4.0, noise=noise, latent=torch.zeros_like(noise))
        assert torch.isfinite(out).all() and not torch.equal(out, plain), sampler


def test_category_follows_the_running_comfyui(package):
    model_sampling_sd3 = _node_class("ModelSamplingSD3")
    node = package.NODE_CLASS_MAPPINGS["ModelSamplingFlowSDXL"]
    assert node.CATEGORY == model_sampling_sd3.CATEGORY
    assert "rectified flow" in node.SEARCH_ALIASES
    import comfy_extras.nodes_custom_sampler as custom_sampler
    assert package.NODE_CLASS_MAPPINGS["SamplerFlowEuler"].CATEGORY == custom_sampler.KSamplerSelect.CATEGORY
    assert package.NODE_CLASS_MAPPINGS["FlowSchedulerSDXL"].CATEGORY == custom_sampler.BasicScheduler.CATEGORY
    display = package.NODE_DISPLAY_NAME_MAPPINGS["ModelSamplingFlowSDXL"]
    assert "Model Sampling" in display and "RF SDXL" in display
