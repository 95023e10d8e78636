"""A small kustomize for the subset deploy/ uses, for machines without `kubectl kustomize`.

Supported kustomization fields: resources (files and directories), namespace, configMapGenerator
(files / literals, content-hash name suffix exactly as kustomize computes it), generatorOptions,
images, replicas, patches (strategic-merge, by path or inline, optional target by kind/name).
Anything else raises `Unsupported`, so a new kustomize feature in deploy/ cannot be silently
mis-rendered; tests/deploy/test_kustomize.py checks that this agrees with kubectl where it exists.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]

KNOWN_FIELDS = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "configMapGenerator",
    "generatorOptions",
    "images",
    "replicas",
    "patches",
}
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
# Strategic-merge keys of the list fields deploy/ patches (core/v1 and apps/v1 patchMergeKey).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
    "topologySpreadConstraints": "topologyKey",
}


class Unsupported(Exception):
    """The kustomization uses something this renderer does not implement."""


def _go_json(value: Any) -> str:
    """encoding/json.Marshal: sorted keys, no spaces, HTML-safe escapes."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(ch, esc)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def configmap_hash(cm: Obj) -> str:
    """kustomize's name suffix (api/hasher): sha256 of the JSON of kind/name/data, encoded.

    Generated ConfigMaps are hashed with an empty name (checked against kustomize v5.5)."""
    m: Obj = {"kind": "ConfigMap", "name": "", "data": cm.get("data") or {}}
    if cm.get("binaryData"):
        m["binaryData"] = cm["binaryData"]
    digest = hashlib.sha256(_go_json(m).encode()).hexdigest()[:10]
    return digest.translate(str.maketrans({"0": "g", "1": "h", "3": "k", "a": "m", "e": "t"}))


def _load_docs(path: Path) -> list[Obj]:
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    for d in docs:
        if not isinstance(d, dict) or "kind" not in d:
            raise Unsupported(f"{path}: not a Kubernetes object")
    return docs


def _merge(base: Any, patch: Any, field: str = "") -> Any:
    if isinstance(patch, dict) and isinstance(base, dict):
        if "$patch" in patch:
            raise Unsupported(f"$patch directive inside {field}")
        out = dict(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = _merge(out[key], value, key)
            else:
                out[key] = copy.deepcopy(value)
        return out
    if isinstance(patch, list) and isinstance(base, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        # Order as kustomize's strategic merge: the patch's elements in the patch's order (merged
        # with their namesakes), then the base's elements the patch does not name.
        by_key = {item.get(key): item for item in base}
        merged = [
            _merge(by_key[item.get(key)], item, field)
            if item.get(key) in by_key
            else copy.deepcopy(item)
            for item in patch
        ]
        named = {item.get(key) for item in patch}
        return merged + [copy.deepcopy(item) for item in base if item.get(key) not in named]
    if field == "ports" and isinstance(patch, list):
        raise Unsupported("patching a ports list")
    return copy.deepcopy(patch)


def _image_name(image: str) -> tuple[str, str]:
    """(name, tag-or-digest suffix including its separator)."""
    if "@" in image:
        name, digest = image.split("@", 1)
        return name, "@" + digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon:]
    return image, ""


def _pod_specs(obj: Obj) -> list[Obj]:
    if obj["kind"] == "Pod":
        return [obj["spec"]]
    if obj["kind"] in WORKLOADS:
        return [obj["spec"]["template"]["spec"]]
    if obj["kind"] == "CronJob":
        return [obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]]
    return []


def _containers(spec: Obj) -> list[Obj]:
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def _rename_configmap_refs(objs: list[Obj], renames: dict[str, str]) -> None:
    def fix(holder: Obj | None, key: str = "name") -> None:
        if holder and holder.get(key) in renames:
            holder[key] = renames[holder[key]]

    for obj in objs:
        for spec in _pod_specs(obj):
            for vol in spec.get("volumes", []):
                fix(vol.get("configMap"))
                for src in (vol.get("projected") or {}).get("sources", []):
                    fix(src.get("configMap"))
            for c in _containers(spec):
                for env in c.get("env", []):
                    fix((env.get("valueFrom") or {}).get("configMapKeyRef"))
                for env_from in c.get("envFrom", []):
                    fix(env_from.get("configMapRef"))


def _matches(obj: Obj, target: Obj) -> bool:
    unknown = set(target) - {"kind", "name", "group", "version"}
    if unknown:
        raise Unsupported(f"patch target fields {sorted(unknown)}")
    if "kind" in target and obj["kind"] != target["kind"]:
        return False
    return not ("name" in target and obj["metadata"]["name"] != target["name"])


def _ident(obj: Obj) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def build(directory: Path | str) -> list[Obj]:
    """Render the kustomization in `directory` to its list of objects."""
    directory = Path(directory)
    kfile = directory / "kustomization.yaml"
    if not kfile.exists():
        raise Unsupported(f"{directory}: no kustomization.yaml")
    k = yaml.safe_load(kfile.read_text(encoding="utf-8")) or {}
    unknown = set(k) - KNOWN_FIELDS
    if unknown:
        raise Unsupported(f"{kfile}: fields {sorted(unknown)}")
    if k.get("kind", "Kustomization") != "Kustomization":
        raise Unsupported(f"{kfile}: kind {k.get('kind')}")

    objs: list[Obj] = []
    for res in k.get("resources", []):
        path = (directory / res).resolve()
        objs.extend(build(path) if path.is_dir() else _load_docs(path))

    # Generators.
    options = k.get("generatorOptions") or {}
    generated: list[Obj] = []
    for gen in k.get("configMapGenerator", []):
        extra = set(gen) - {"name", "files", "literals", "options"}
        if extra or gen.get("behavior"):
            raise Unsupported(f"configMapGenerator fields {sorted(extra)}")
        data: dict[str, str] = {}
        for entry in gen.get("files", []):
            key, _, rel = entry.rpartition("=")
            key = key or Path(rel).name
            data[key] = (directory / rel).read_text(encoding="utf-8")
        for lit in gen.get("literals", []):
            key, _, value = lit.partition("=")
            data[key] = value
        cm: Obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}}
        if data:
            cm["data"] = data
        merged = {**options, **(gen.get("options") or {})}
        if set(merged) - {"disableNameSuffixHash"}:
            raise Unsupported(f"generator options {sorted(merged)}")
        cm["_hash"] = not merged.get("disableNameSuffixHash", False)
        generated.append(cm)
    objs.extend(generated)

    # Patches (strategic merge), matched by the patch's own kind/name unless a target is given.
    for patch_spec in k.get("patches", []):
        if "path" in patch_spec:
            patch_docs = _load_docs(directory / patch_spec["path"])
        else:
            patch_docs = [yaml.safe_load(patch_spec["patch"])]
        for patch in patch_docs:
            if isinstance(patch, list):
                raise Unsupported("JSON6902 patches")
            target = patch_spec.get("target") or {
                "kind": patch["kind"],
                "name": patch["metadata"]["name"],
            }
            hits = [o for o in objs if _matches(o, target)]
            if not hits:
                raise Unsupported(f"patch target {target} matches nothing")
            for o in hits:
                if patch.get("$patch") == "delete":
                    objs.remove(o)
                    continue
                body = {key: v for key, v in patch.items() if key not in ("apiVersion", "kind")}
                body["metadata"] = {
                    key: v for key, v in body.get("metadata", {}).items() if key != "name"
                }
                o.update(_merge(o, body))

    # Namespace.
    if "namespace" in k:
        for o in objs:
            if o["kind"] not in CLUSTER_SCOPED:
                o["metadata"]["namespace"] = k["namespace"]

    # Images.
    for img in k.get("images", []):
        if set(img) - {"name", "newName", "newTag", "digest"}:
            raise Unsupported(f"images fields {sorted(img)}")
        for o in objs:
            for spec in _pod_specs(o):
                for c in _containers(spec):
                    name, suffix = _image_name(c["image"])
                    if name != img["name"]:
                        continue
                    name = img.get("newName", name)
                    if "digest" in img:
                        suffix = "@" + img["digest"]
                    elif "newTag" in img:
                        suffix = ":" + str(img["newTag"])
                    c["image"] = name + suffix

    # Replicas.
    for rep in k.get("replicas", []):
        hits = [o for o in objs if o["kind"] in WORKLOADS and o["metadata"]["name"] == rep["name"]]
        if not hits:
            raise Unsupported(f"replicas: no workload named {rep['name']}")
        for o in hits:
            o["spec"]["replicas"] = rep["count"]

    # Hash suffixes of this level's generated ConfigMaps, and the references to them.
    renames: dict[str, str] = {}
    for cm in generated:
        if cm.pop("_hash"):
            old = cm["metadata"]["name"]
            cm["metadata"]["name"] = f"{old}-{configmap_hash(cm)}"
            renames[old] = cm["metadata"]["name"]
    _rename_configmap_refs(objs, renames)

    seen: set[tuple[str, str, str]] = set()
    for o in objs:
        ident = (*_ident(o), o["metadata"].get("namespace", ""))
        if ident in seen:
            raise Unsupported(f"duplicate object {ident}")
        seen.add(ident)
    return objs
