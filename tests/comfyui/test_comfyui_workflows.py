"""example_workflows/*.json are ComfyUI UI-format workflows the node definitions accept, and
example_workflows/api/*.json are the same workflows in API format (for /prompt clients).

Checked against the real node classes (ComfyUI built-ins, comfy_extras and ours): every node
type exists, links join outputs to inputs of the same type, every required input is fed, and
widgets_values line up with the widgets INPUT_TYPES declares (types, ranges, combo choices).
Skips when COMFYUI_DIR is unset.
"""
import glob
import json
import os

import pytest

import comfy_support as support

WORKFLOWS = sorted(glob.glob(os.path.join(support.REPO, "example_workflows", "*.json")))
API_FOLDER = os.path.join(support.REPO, "example_workflows", "api")
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}
USER_FILE_WIDGETS = {"ckpt_name", "image"}  # choices depend on the user's model and input folders


@pytest.fixture(scope="module")
def node_classes(comfyui):
    package = support.load_repo_as_custom_node()
    classes = support.builtin_node_classes("nodes_custom_sampler", "nodes_model_advanced")
    classes.update(package.NODE_CLASS_MAPPINGS)
    return classes


def declared_inputs(cls):
    types = cls.INPUT_TYPES()
    out = {}
    for group in ("required", "optional"):
        for name, spec in types.get(group, {}).items():
            kind, options = spec[0], spec[1] if len(spec) > 1 else {}
            if kind == "COMBO":     # V3 nodes: ("COMBO", {"options": [...]}), V1: ([...], {...})
                kind = list(options["options"])
            out[name] = (group, kind, options)
    return out


def is_widget(kind):
    return isinstance(kind, (list, tuple)) or kind in WIDGET_TYPES or kind == "COMBO"


def expected_widget_values(cls):
    """[(input name, kind, options)] in the order the frontend stores widgets_values."""
    values = []
    for name, (_, kind, options) in declared_inputs(cls).items():
        if not is_widget(kind):
            continue
        values.append((name, kind, options))
        if options.get("control_after_generate"):
            values.append((f"{name}:control", ["fixed", "increment", "decrement", "randomize"], {}))
        if options.get("image_upload"):
            values.append((f"{name}:upload", None, {}))
    return values


def check_widget(name, kind, options, value):
    if kind is None:
        return
    if isinstance(kind, (list, tuple)):
        assert value in kind or name in USER_FILE_WIDGETS, f"{name}: {value!r} not in {list(kind)}"
    elif kind == "INT":
        assert isinstance(value, int) and not isinstance(value, bool), f"{name}: {value!r}"
    elif kind == "FLOAT":
        assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{name}: {value!r}"
    elif kind == "BOOLEAN":
        assert isinstance(value, bool), f"{name}: {value!r}"
    elif kind == "STRING":
        assert isinstance(value, str), f"{name}: {value!r}"
    if kind in ("INT", "FLOAT"):
        assert options.get("min", value) <= value <= options.get("max", value), f"{name}: {value!r} out of range"


def test_there_are_txt2img_and_img2img_workflows():
    names = [os.path.basename(path) for path in WORKFLOWS]
    assert any("txt2img" in n for n in names) and any("img2img" in n for n in names)


@pytest.mark.parametrize("path", WORKFLOWS, ids=os.path.basename)
def test_workflow_is_accepted_by_the_node_definitions(node_classes, path):
    with open(path) as f:
        validate(json.load(f), node_classes)


def test_the_check_catches_a_broken_workflow(node_classes):
    with open(next(p for p in WORKFLOWS if "txt2img" in p)) as f:
        workflow = json.load(f)
    sampler = next(n for n in workflow["nodes"] if n["type"] == "KSampler")
    sampler["widgets_values"][4] = "flow_nonexistent"
    with pytest.raises(AssertionError, match="flow_nonexistent"):
        validate(workflow, node_classes)
    sampler["widgets_values"][4] = "flow_euler"
    next(n for n in workflow["nodes"] if n["type"] == "ModelSamplingFlowSDXL")["widgets_values"].pop()
    with pytest.raises(AssertionError):
        validate(workflow, node_classes)


def to_api(workflow, node_classes):
    """The API format of a UI-format workflow (what the frontend's "Export (API)" writes)."""
    links = {link[0]: link for link in workflow["links"]}
    prompt = {}
    for node in sorted(workflow["nodes"], key=lambda n: n["id"]):
        inputs = {}
        widgets = expected_widget_values(node_classes[node["type"]])
        for (name, _, _), value in zip(widgets, node.get("widgets_values", [])):
            if ":" not in name:          # control_after_generate / upload are frontend-only widgets
                inputs[name] = value
        for slot in node.get("inputs", []):
            if slot.get("link") is not None:
                _, source, source_slot, _, _, _ = links[slot["link"]]
                inputs[slot["name"]] = [str(source), source_slot]
        prompt[str(node["id"])] = {"inputs": inputs, "class_type": node["type"],
                                   "_meta": {"title": node.get("title") or node["type"]}}
    return prompt


@pytest.mark.parametrize("path", WORKFLOWS, ids=os.path.basename)
def test_each_workflow_ships_in_api_format_too(node_classes, path):
    api_path = os.path.join(API_FOLDER, os.path.basename(path))
    assert os.path.isfile(api_path), f"no API-format copy of {os.path.basename(path)} in example_workflows/api/"
    with open(path) as f, open(api_path) as g:
        expected, shipped = to_api(json.load(f), node_classes), json.load(g)
    strip = lambda prompt: {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in prompt.items()}  # noqa: E731
    assert strip(shipped) == strip(expected)


def test_img2img_names_the_image_it_expects_and_it_is_shipped():
    with open(os.path.join(API_FOLDER, "rf_sdxl_img2img.json")) as f:
        prompt = json.load(f)
    images = [node["inputs"]["image"] for node in prompt.values() if node["class_type"] == "LoadImage"]
    assert images == ["example.png"]
    assert os.path.isfile(os.path.join(support.REPO, "example_workflows", "example.png"))


def validate(workflow, node_classes):
    assert {"last_node_id", "last_link_id", "nodes", "links", "version"} <= set(workflow)
    nodes_by_id = {node["id"]: node for node in workflow["nodes"]}
    assert len(nodes_by_id) == len(workflow["nodes"]) and workflow["last_node_id"] == max(nodes_by_id)
    assert workflow["last_link_id"] == max(link[0] for link in workflow["links"])
    uses_ours = False
    for node in workflow["nodes"]:
        assert node["type"] in node_classes, f"unknown node type {node['type']}"
        cls = node_classes[node["type"]]
        uses_ours |= cls.__module__.split(".")[-2:-1] == ["comfy_nodes"] or "comfy_nodes" in cls.__module__
        inputs = declared_inputs(cls)
        # outputs a newer ComfyUI added (SaveImage's IMAGE in v0.33.0) may be absent from a saved workflow
        saved = [o["type"] for o in node.get("outputs", [])]
        assert saved == list(cls.RETURN_TYPES)[:len(saved)], node["type"]
        for slot in node.get("inputs", []):
            assert slot["name"] in inputs and not is_widget(inputs[slot["name"]][1]), (node["type"], slot["name"])
            assert slot["type"] == inputs[slot["name"]][1], (node["type"], slot["name"])
            if inputs[slot["name"]][0] == "required":
                assert slot["link"] is not None, f"{node['type']}.{slot['name']} is not connected"
        linked = {slot["name"] for slot in node.get("inputs", [])}
        missing = [name for name, (group, kind, _) in inputs.items()
                   if group == "required" and not is_widget(kind) and name not in linked]
        assert missing == [], (node["type"], missing)
        widgets = expected_widget_values(cls)
        values = node.get("widgets_values", [])
        assert len(values) == len(widgets), (node["type"], values, [w[0] for w in widgets])
        for (name, kind, options), value in zip(widgets, values):
            check_widget(name, kind, options, value)
    assert uses_ours
    for link_id, source, source_slot, target, target_slot, kind in workflow["links"]:
        output = nodes_by_id[source]["outputs"][source_slot]
        target_input = nodes_by_id[target]["inputs"][target_slot]
        assert output["type"] == kind == target_input["type"], link_id
        assert link_id in output["links"] and target_input["link"] == link_id
