"""The Forge backend and the backend contract without a webui: a Forge-like stub must not be taken by any
backend (no webui mechanism behind it), the reason is reported, and Forge's predictor keeps the core's
VE view with Forge's own conventions (sigma(0) is the smallest table sigma, retargeting is in place)."""
import sys
import types

import pytest
import torch

from model_sampling_flow.model_sampling import FlowVEModelSampling
from webui_extension import backend as contract
from webui_extension.backend import FlowSamplingError
from webui_extension.forge import ForgeBackend, ForgeFlowPredictor
from webui_extension.reforge import ReforgeBackend


class _Patcher:
    def __init__(self, model):
        self.model = model

    def clone(self):
        return _Patcher(self.model)

    def add_object_patch(self, name, obj):
        pass


def forge_like_stub():
    """Forge's three containers, a UnetPatcher-like unet and a KModel-like model with a predictor."""
    kmodel = torch.nn.Module()
    kmodel.predictor = torch.nn.Module()
    kmodel.apply_model = lambda x, t, **kwargs: self_predictor_call(kmodel, x, t)
    container = types.SimpleNamespace(unet=_Patcher(kmodel))
    return types.SimpleNamespace(forge_objects=container, forge_objects_original=container,
                                 forge_objects_after_applying_lora=container, is_sdxl=True)


def self_predictor_call(kmodel, x, t):
    return kmodel.predictor(x, t)


def test_a_forge_like_stub_is_rejected_by_every_backend_and_the_reason_is_given():
    stub = forge_like_stub()
    assert ForgeBackend.detect(stub) is False          # no webui whose samplers read the predictor
    assert ReforgeBackend.detect(stub) is False        # no ldm_patched model_sampling to patch
    assert contract.select_backend(stub) is None
    why = contract.why_no_backend(stub)
    assert "cannot be applied" in why and "exactly as without the extension" in why
    assert "Forge:" in why and "reForge:" in why


def test_forge_predictor_floors_sigma_at_the_table_minimum():
    predictor = ForgeFlowPredictor(3.0, "continuous")
    core = FlowVEModelSampling(3.0, "continuous")
    assert torch.equal(predictor.sigmas, core.sigmas)
    t = torch.tensor([0.0, 0.5, 500.0, 999.0])
    sigma = predictor.sigma(t)
    assert float(sigma[0]) == float(predictor.sigma_min) > 0.0        # Forge's linker asks for sigma(0)
    assert torch.equal(sigma[2:], core.sigma(t)[2:])
    x = torch.randn(2, 4, 8, 8)
    s = torch.tensor([5.0, 0.2])
    assert torch.equal(predictor.calculate_input(s, x), core.calculate_input(s, x))
    assert torch.equal(predictor.timestep(s), core.timestep(s))


def test_retarget_changes_the_object_in_place_and_set_sigmas_refuses():
    predictor = ForgeFlowPredictor(3.0, "continuous")
    held = predictor                       # what a sampler's ForgeScheduleLinker holds
    predictor.retarget(FlowVEModelSampling(1.5, "floor_999"))
    assert held.shift == 1.5 and held.timestep_mapping == "floor_999"
    assert torch.equal(held.sigmas, FlowVEModelSampling(1.5, "floor_999").sigmas)
    with pytest.raises(FlowSamplingError, match="Zero Terminal SNR"):
        predictor.set_sigmas(predictor.sigmas)


def test_the_flow_samplers_find_flow_through_the_contract():
    predictor = ForgeFlowPredictor(3.0, "continuous")
    linker = types.SimpleNamespace(predictor=predictor)                 # Forge's ForgeScheduleLinker
    cfg = types.SimpleNamespace(model_wrap=linker)                      # Forge's CFGDenoiserKDiffusion
    assert contract.flow_model_sampling(cfg) is predictor
    assert contract.flow_model_sampling(types.SimpleNamespace(model_wrap=types.SimpleNamespace(
        predictor=torch.nn.Module()))) is None


def test_apply_rejects_bad_settings():
    with pytest.raises(ValueError, match="settings"):
        ForgeBackend().apply(forge_like_stub(), {"shift": 3})


def _fake_webui_options(monkeypatch, **options):
    """A stand-in `modules.shared.opts` (the webui's settings) for the refusal checks."""
    modules = types.ModuleType("modules")
    shared = types.ModuleType("modules.shared")
    shared.opts = types.SimpleNamespace(**options)
    modules.shared = shared
    monkeypatch.setitem(sys.modules, "modules", modules)
    monkeypatch.setitem(sys.modules, "modules.shared", shared)


def _processing(**values):
    fields = dict(sampler_name="Euler", scheduler="Automatic", cfg_scale=7.0, enable_hr=False, sd_model=None)
    fields.update(values)
    return types.SimpleNamespace(**fields)


def test_refusals_name_the_sampler_schedule_or_setting(monkeypatch):
    from webui_extension.forge import OLD_KARRAS_MESSAGE
    _fake_webui_options(monkeypatch, use_old_karras_scheduler_sigmas=False)
    backend = ForgeBackend()
    assert backend.refusal(_processing()) is None
    assert "'LCM'" in backend.refusal(_processing(sampler_name="LCM"))
    assert "'Align Your Steps'" in backend.refusal(_processing(scheduler="Align Your Steps"))
    # Beta is accepted: computed over the flow table it is the native flow schedule (docs/practical_steps.txt)
    assert backend.refusal(_processing(scheduler="Beta")) is None
    assert "'DDIM CFG++'" in backend.refusal(_processing(sampler_name="DDIM CFG++", cfg_scale=1.0))
    assert backend.refusal(_processing(sampler_name="DDIM CFG++", cfg_scale=2.0)) is None
    hires = _processing(enable_hr=True, hr_sampler_name="LCM", hr_scheduler="Use same scheduler")
    assert "'LCM'" in backend.refusal(hires)
    # DPM adaptive is accepted: forced through Forge's own process_images it lands on the distribution
    assert backend.refusal(_processing(sampler_name="DPM adaptive")) is None
    _fake_webui_options(monkeypatch, use_old_karras_scheduler_sigmas=True)
    assert backend.refusal(_processing()) == OLD_KARRAS_MESSAGE


def test_zero_terminal_snr_is_a_conflict(monkeypatch):
    from webui_extension.forge import ZTSNR_MESSAGE
    _fake_webui_options(monkeypatch, sd_noise_schedule="Zero Terminal SNR")
    assert ForgeBackend().conflict(_processing(sd_model=forge_like_stub())) == ZTSNR_MESSAGE
    _fake_webui_options(monkeypatch, sd_noise_schedule="Default")
    assert ForgeBackend().conflict(_processing(sd_model=forge_like_stub())) is None
