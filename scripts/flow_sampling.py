"""webui entry (A1111 1.10, reForge, Forge): the "Flow sampling" accordion for rectified-flow SDXL checkpoints.

The accordion decides whether flow sampling is on for the loaded checkpoint; the backend chosen for
the running webui (webui_extension/backend.py) patches the model. The patch belongs to the model,
so passes other extensions start (hires fix, ADetailer) sample the flow way too, until a
generation with flow off, a checkpoint change or a script reload removes it.
"""
import gradio as gr

from modules import script_callbacks, scripts, shared

from model_sampling_flow.schedule import TIMESTEP_MAPPINGS, TIMESTEP_MAPPING_DESCRIPTIONS
from webui_extension import control
from webui_extension.backend import select_backend, why_no_backend

try:
    from webui_extension import a1111 as a1111_backend
except ImportError:  # a webui without A1111's k-diffusion layout
    a1111_backend = None

SECTION = ("flow_sampling", "Flow sampling")
SETTINGS_CATEGORY = "sd"    # Settings > Stable Diffusion, next to "Sampler parameters"
MAPPING_INFO = "How the trainer turned sigma into the network's timestep (Settings > Flow sampling explains)"
RESOLUTION_LABEL = "Resolution-dependent shift (sqrt(pixels / 1024²), replaces Flow shift)"
OPTION_NAMES = {"mode": "flow_sampling_mode", "shift": "flow_sampling_shift",
                "timestep_mapping": "flow_sampling_timestep_mapping",
                "resolution_shift": "flow_sampling_resolution_shift", "view": "flow_sampling_view"}


def default(key):
    return getattr(shared.opts, OPTION_NAMES[key], control.DEFAULTS[key])


def from_settings(component):
    """The component shows the Settings default at every launch, UI reload and page load.

    `do_not_save_to_config`: the webui's ui-config.json neither records nor restores its value (it
    would otherwise freeze the first launch's value over every later Settings change); the callable
    value is re-read by gradio when a page loads.
    """
    component.do_not_save_to_config = True
    return component


def shift_state(resolution_on):
    """The Flow shift slider while the resolution checkbox is (not) ticked: greyed out when replaced."""
    label = "Flow shift (replaced by the resolution-dependent shift)" if resolution_on else "Flow shift"
    return gr.update(interactive=not resolution_on, label=label)


def loaded_model():
    """The loaded model without triggering a load (shared.sd_model loads one when none is)."""
    from modules import sd_models
    return sd_models.model_data.sd_model


def loaded_checkpoint_path(sd_model):
    info = getattr(sd_model, "sd_checkpoint_info", None)
    return getattr(info, "filename", None)


def describe_loaded_checkpoint():
    path = loaded_checkpoint_path(loaded_model())
    if not path:
        return "No checkpoint loaded."
    is_rf, why = control.detect_rectified_flow(path)
    verdict = "Auto turns flow sampling **on**" if is_rf else "Auto leaves flow sampling **off**"
    return f"{verdict} for this checkpoint: {why}"


def report(p, text):
    print(f"[flow sampling] {text}")
    if hasattr(p, "comment"):
        p.comment(text)


class FlowSamplingScript(scripts.Script):
    sorting_priority = 15

    def title(self):
        return "Flow sampling"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        with gr.Accordion("Flow sampling", open=False, elem_id=self.elem_id("accordion")):
            mode = from_settings(gr.Radio(
                list(control.MODES), value=lambda: default("mode"), label="Flow sampling",
                elem_id=self.elem_id("mode"),
                info="Auto: on for checkpoints marked rectified flow (header only, no weights read)"))
            resolution_on = bool(default("resolution_shift"))
            with gr.Row():
                shift = from_settings(gr.Slider(
                    minimum=0.1, maximum=12.0, step=0.05, value=lambda: default("shift"),
                    label=shift_state(resolution_on)["label"], interactive=not resolution_on,
                    elem_id=self.elem_id("shift")))
                mapping = from_settings(gr.Dropdown(
                    list(TIMESTEP_MAPPINGS), value=lambda: default("timestep_mapping"),
                    label="Flow timestep mapping", elem_id=self.elem_id("mapping"), info=MAPPING_INFO))
            with gr.Row():
                resolution = from_settings(gr.Checkbox(
                    value=lambda: default("resolution_shift"), elem_id=self.elem_id("resolution"),
                    label=RESOLUTION_LABEL))
                # Both webuis sample in the VE view, the only one in which their samplers and img2img
                # rule are right; the hidden field keeps the script's argument order and infotext.
                view = from_settings(gr.Radio(list(control.VIEW_CHOICES), value="ve", label="Sampling view",
                                              visible=False, elem_id=self.elem_id("view")))
            with gr.Row():
                status = gr.Markdown(elem_id=self.elem_id("status"))
                check = gr.Button("Check loaded checkpoint", elem_id=self.elem_id("check"))
            check.click(fn=describe_loaded_checkpoint, inputs=[], outputs=[status], show_progress=False)
            resolution.change(fn=shift_state, inputs=[resolution], outputs=[shift], show_progress=False)
        components = {"mode": mode, "shift": shift, "timestep_mapping": mapping,
                      "resolution_shift": resolution, "view": view}
        self.infotext_fields = [(components[key], paste) for key, paste in control.INFOTEXT_PASTE]
        self.paste_field_names = []
        return [mode, shift, mapping, resolution, view]

    def process(self, p, mode=None, shift=None, timestep_mapping=None, resolution_shift=None, view=None, *args):
        values = {"mode": mode, "shift": shift, "timestep_mapping": timestep_mapping,
                  "resolution_shift": resolution_shift, "view": view}
        values = {key: default(key) if value is None else value for key, value in values.items()}
        sd_model = shared.sd_model
        backend = select_backend(sd_model)
        try:
            values = control.apply_overrides(values, getattr(p, control.OVERRIDES_ATTR, None))
            decision = control.decide(values["mode"], values["shift"], values["timestep_mapping"],
                                      values["resolution_shift"], values["view"], loaded_checkpoint_path(sd_model))
        except (ValueError, OSError) as error:
            # an invalid value from the API, XYZ or a script, or an unreadable marker in Auto: one
            # message, and flow is off for this generation (its infotext carries no flow keys)
            if backend is not None:
                backend.remove(sd_model)
            report(p, f"Flow sampling not applied: {error}")
            return
        if backend is None:
            if decision.settings is not None:
                report(p, why_no_backend(sd_model))
            return
        if decision.settings is None:
            backend.remove(sd_model)
            if values["mode"] == "Auto":
                report(p, decision.reason)
            return
        conflict = backend.conflict(p)
        if conflict:
            backend.remove(sd_model)
            report(p, conflict)
            return
        backend.apply(sd_model, decision.settings)
        settings = backend.active(sd_model)
        p.extra_generation_params.update(settings.to_infotext())
        if values["mode"] == "Auto":
            report(p, decision.reason)
        refused = backend.refusal(p)
        if refused:
            report(p, refused)

    def process_before_every_sampling(self, p, *args, **kwargs):
        sd_model = shared.sd_model
        backend = select_backend(sd_model)
        if backend is not None and backend.active(sd_model) is not None:
            backend.before_sampling(p)


# ---- registration: once per script load; every step below is idempotent ----------------------
if a1111_backend is not None:
    try:
        from modules import sd_samplers_kdiffusion as _kdiffusion  # noqa: F401  (A1111's layout)
        a1111_backend.register_samplers()
        a1111_backend.register_schedulers()
        script_callbacks.on_cfg_denoiser(a1111_backend.observe_cfg_denoiser)
    except ImportError:
        pass


def on_model_loaded(sd_model):
    """New weights (possibly into the same model object): the next generation decides again."""
    backend = select_backend(sd_model)
    if backend is not None:
        backend.remove(sd_model)


def on_script_unloaded():
    sd_model = loaded_model()
    backend = select_backend(sd_model) if sd_model is not None else None
    if backend is not None:
        backend.remove(sd_model)


SETTINGS_HELP = {
    "mode": "What the Flow sampling accordion shows when the UI loads. Off: the webui as without this "
            "extension. Auto: on when the checkpoint's header or sidecar marks it rectified flow. On: always.",
    "shift": "The trainer's time shift (the model card says it; 3 is common). Larger puts more steps at "
             "high noise.",
    "timestep_mapping": "; ".join(f"{k}: {v}" for k, v in TIMESTEP_MAPPING_DESCRIPTIONS.items()),
    "resolution_shift": "Shift sqrt(pixels / 1024²) per generation instead of the fixed Flow shift "
                        "(bluvoll's resolution-dependent training).",
}


def on_ui_settings():
    options = (
        ("mode", "Flow sampling default", gr.Radio, {"choices": list(control.MODES)}),
        ("shift", "Flow shift default", gr.Slider, {"minimum": 0.1, "maximum": 12.0, "step": 0.05}),
        ("timestep_mapping", "Flow timestep mapping default", gr.Dropdown, {"choices": list(TIMESTEP_MAPPINGS)}),
        ("resolution_shift", "Resolution-dependent shift by default", gr.Checkbox, {}),
    )
    for key, label, component, args in options:
        info = shared.OptionInfo(control.DEFAULTS[key], label, component, args, section=SECTION)
        info.category_id = SETTINGS_CATEGORY
        shared.opts.add_option(OPTION_NAMES[key], info.info(SETTINGS_HELP[key]))


def add_xyz_axes():
    found = [x for x in scripts.scripts_data if x.script_class.__module__ == "xyz_grid.py"]
    if not found:
        return
    xyz_grid = found[0].module
    present = {option.label for option in xyz_grid.axis_options}
    for label, kind, key, convert, choices in control.XYZ_AXES:
        if label not in present:
            xyz_grid.axis_options.append(xyz_grid.AxisOption(label, kind, control.xyz_setter(key, convert),
                                                             confirm=control.xyz_confirm(label, convert),
                                                             choices=choices))


script_callbacks.on_model_loaded(on_model_loaded)
script_callbacks.on_script_unloaded(on_script_unloaded)
script_callbacks.on_ui_settings(on_ui_settings)
script_callbacks.on_before_ui(add_xyz_axes)
