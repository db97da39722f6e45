"""Host-free tests of the webui layer: backend selection, the A1111 backend's patch and exact
restore, the script's Off/Auto/On decision, infotext paste and XYZ overrides."""
import json
import sys

import pytest
import torch

from flow_test_support.standins import import_k_diffusion  # noqa: E402

try:
    import_k_diffusion()
except ImportError as error:  # pragma: no cover
    pytest.skip(f"k-diffusion is not importable here: {error}", allow_module_level=True)

from model_sampling_flow import views  # noqa: E402
from model_sampling_flow.settings import FlowSettings  # noqa: E402
from webui_extension import a1111, backend, control  # noqa: E402


class Model(torch.nn.Module):
    """The attributes of an A1111 SDXL model the backend touches."""

    def __init__(self, path="/models/x.safetensors"):
        super().__init__()
        self.alphas_cumprod = torch.linspace(0.999, 0.01, 1000)
        self.sd_checkpoint_info = type("Info", (), {"filename": path})()
        self.calls = []

    def apply_model(self, x, t, cond=None):
        self.calls.append(t)
        return torch.zeros_like(x)


def snapshot(model):
    return dict(model.__dict__), dict(model._buffers), dict(model._modules)


# ---- backend contract ------------------------------------------------------------------------
def test_backend_interface_documents_the_contract():
    for method in ("detect", "apply", "remove", "active", "before_sampling", "conflict"):
        assert callable(getattr(backend.Backend, method))
        assert getattr(backend.Backend, method).__doc__
    assert issubclass(a1111.A1111Backend, backend.Backend)
    assert issubclass(backend.FlowSamplingError, RuntimeError)


def test_no_backend_is_selected_outside_a_webui():
    # neither A1111's modules nor reForge's forge_objects exist here
    assert a1111.A1111Backend.detect(Model()) is False
    assert backend.select_backend(Model()) is None


def test_apply_then_remove_restores_the_model_exactly():
    model = Model()
    before = snapshot(model)
    a1111_backend = a1111.A1111Backend()
    a1111_backend.apply(model, FlowSettings(shift=2.0))
    assert a1111_backend.active(model).shift == 2.0
    assert isinstance(model.create_denoiser(), a1111.FlowDenoiser)
    a1111_backend.apply(model, FlowSettings(shift=4.0))          # replaces, never stacks
    assert a1111_backend.active(model).shift == 4.0
    assert model.create_denoiser().model_sampling.shift == 4.0
    a1111_backend.remove(model)
    assert snapshot(model) == before
    assert a1111_backend.active(model) is None
    a1111_backend.remove(model)                                 # idempotent
    assert snapshot(model) == before


def test_remove_restores_instance_attributes_that_were_there_before():
    model = Model()
    own = lambda: "someone else's denoiser"  # noqa: E731
    model.create_denoiser = own
    a1111_backend = a1111.A1111Backend()
    a1111_backend.apply(model, FlowSettings())
    assert model.create_denoiser is not own
    a1111_backend.remove(model)
    assert model.create_denoiser is own and "apply_model" not in model.__dict__


def test_apply_coerces_the_view_to_ve_for_a1111():
    model = Model()
    a1111.A1111Backend().apply(model, FlowSettings(view="flow"))
    assert a1111.A1111Backend().active(model).view == "ve"


def test_timestep_samplers_see_the_ve_view_as_an_eps_model():
    model = Model()
    original_table = model.alphas_cumprod
    a1111.A1111Backend().apply(model, FlowSettings(shift=3.0))
    sigma_ve = FlowSettings(shift=3.0).model_sampling().sigmas.double()
    assert torch.allclose(model.alphas_cumprod.double(), 1 / (1 + sigma_ve ** 2), rtol=1e-6)
    model.calls.clear()
    # DDIM / PLMS pass integer timesteps, UniPC fractional ones: the network gets the flow state and
    # the trainer's timestep of that noise level, and its velocity comes back as noise
    x0, noise = torch.full((2, 4, 2, 2), 0.25, dtype=torch.float64), torch.randn(2, 4, 2, 2, dtype=torch.float64)
    for t in (torch.tensor([500.0, 500.0]), torch.tensor([123.4, 998.5])):
        alpha_bar = views.alpha_bar_at(model.alphas_cumprod, t)[:, None, None, None]
        x_vp = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise
        eps = model.apply_model(x_vp, t, cond={})
        sigma = views.flow_from_vp(x_vp, alpha_bar.flatten())[1]
        # the Model's network answers velocity 0, so eps = the flow state x itself
        assert torch.allclose(eps, (1 - sigma[:, None, None, None]) * x0 + sigma[:, None, None, None] * noise)
        assert torch.allclose(model.calls[-1].double(), 1000 * sigma)
    # at integer timesteps the noise level is the VE table's
    assert torch.allclose(views.flow_from_vp(x_vp, views.alpha_bar_at(model.alphas_cumprod, torch.tensor([500.0])))[1],
                          views.sigma_from_ve(sigma_ve[500:501]), rtol=1e-6)
    denoiser = model.create_denoiser()
    out = denoiser(torch.zeros(1, 4, 2, 2), torch.tensor([1.0]), cond={})
    assert out.shape == (1, 4, 2, 2)
    assert float(model.calls[-1]) == pytest.approx(500.0, rel=1e-5)     # sigma_ve 1 = flow sigma 0.5
    a1111.A1111Backend().remove(model)
    assert model.alphas_cumprod is original_table


def test_lcm_and_unknown_wrappers_are_refused_inside_sampling():
    model = Model()
    a1111.A1111Backend().apply(model, FlowSettings())
    cfg = type("CFG", (), {"model_wrap": object(), "p": None})()
    a1111.observe_cfg_denoiser(type("Params", (), {"denoiser": cfg})())
    try:
        import modules.sd_samplers_timesteps  # noqa: F401
    except ImportError:     # outside A1111 the callback cannot tell, and refuses nothing
        assert getattr(a1111._calling, "refusal", None) is None
        return
    with pytest.raises(backend.FlowSamplingError, match="LCM"):   # pragma: no cover - inside A1111 only
        model.apply_model(torch.zeros(1, 4, 2, 2), torch.tensor([500]), cond={})


def test_resolution_shift_follows_the_generation_size():
    model = Model()
    a1111_backend = a1111.A1111Backend()
    a1111_backend.apply(model, FlowSettings(shift_mode="resolution"))
    sampler = type("Sampler", (), {})()
    sampler.model_wrap_cfg = type("Cfg", (), {"model_wrap": model.create_denoiser()})()
    p = type("P", (), {"sd_model": model, "is_hr_pass": False, "width": 2048, "height": 2048, "sampler": sampler})()
    a1111_backend.before_sampling(p)
    assert sampler.model_wrap_cfg.model_wrap.model_sampling.shift == pytest.approx(2.0)
    assert model.create_denoiser().model_sampling.shift == pytest.approx(2.0)
    assert float(sampler.model_wrap_cfg.model_wrap.sigmas[-1]) == \
        pytest.approx(float(FlowSettings(shift=2.0).model_sampling().sigmas[-1]))


def test_backend_classes_skip_a_missing_module(monkeypatch):
    monkeypatch.setattr(backend, "BACKEND_PATHS", (("webui_extension.no_such_backend", "X"),
                                                   ("webui_extension.a1111", "A1111Backend")))
    assert backend.backend_classes() == [a1111.A1111Backend]


def test_an_unusable_backend_is_reported_once(monkeypatch, capsys):
    monkeypatch.setattr(backend, "_unusable", {})
    monkeypatch.setattr(backend, "BACKEND_PATHS", (("webui_extension.broken_for_test", "X"),))
    monkeypatch.setitem(sys.modules, "webui_extension.broken_for_test", None)  # import raises ImportError
    assert backend.select_backend(object()) is None
    first = capsys.readouterr().out
    assert backend.select_backend(object()) is None
    assert capsys.readouterr().out == "" and "webui_extension.broken_for_test" in backend._unusable
    assert first == "" or "broken_for_test" in first


# ---- the script's decisions --------------------------------------------------------------------
def write_checkpoint(tmp_path, name, metadata):
    header = json.dumps({"__metadata__": metadata,
                         "model.diffusion_model.out.2.bias": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})
    path = tmp_path / name
    raw = header.encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + bytes(16))
    return str(path)


def test_decide_off_on_auto(tmp_path):
    rf = write_checkpoint(tmp_path, "rf.safetensors", {"modelspec.prediction_type": "rectified_flow",
                                                       "flow_sampling.timestep_mapping": "floor_999"})
    plain = write_checkpoint(tmp_path, "plain.safetensors", {})
    assert control.decide("Off", 3, "continuous", False, "ve", rf).settings is None
    on = control.decide("On", 2.5, "continuous", False, "ve", plain)
    assert on.settings == FlowSettings(shift=2.5)
    auto_rf = control.decide("Auto", 3, "continuous", False, "ve", rf)
    assert auto_rf.settings.timestep_mapping == "floor_999"        # the marker states the mapping
    assert "Auto) on" in auto_rf.reason
    auto_plain = control.decide("Auto", 3, "continuous", False, "ve", plain)
    assert auto_plain.settings is None and "Auto) off" in auto_plain.reason
    assert control.decide("Auto", 3, "continuous", False, "ve", None).settings is None
    with pytest.raises(ValueError, match="mode"):
        control.decide("Maybe", 3, "continuous", False, "ve", rf)


def test_infotext_paste_restores_settings():
    settings = FlowSettings(shift=2.5, timestep_mapping="floor_1000", shift_mode="resolution")
    params = {key: value for key, value in settings.to_infotext().items()}
    pasted = {name: paste(params) for name, paste in control.INFOTEXT_PASTE}
    assert pasted == {"mode": "On", "shift": 2.5, "timestep_mapping": "floor_1000", "resolution_shift": True,
                      "view": "ve"}
    # an image made without flow leaves the accordion as it is
    assert all(paste({"Steps": "20"}) is None for _, paste in control.INFOTEXT_PASTE)


def test_xyz_axes_write_overrides_the_script_applies():
    p = type("P", (), {})()
    for label, kind, key, convert, choices in control.XYZ_AXES:
        value = {"mode": "on", "shift": "4.5", "timestep_mapping": "floor_999"}[key]
        control.xyz_setter(key, convert)(p, kind(value), [])
    assert p.flow_sampling_overrides == {"mode": "On", "shift": 4.5, "timestep_mapping": "floor_999"}
    values = control.apply_overrides(dict(control.DEFAULTS), p.flow_sampling_overrides)
    assert values["mode"] == "On" and values["shift"] == 4.5
    with pytest.raises(ValueError, match="Flow mapping"):
        control.xyz_setter("timestep_mapping", control.XYZ_AXES[2][3])(p, "nope", [])
