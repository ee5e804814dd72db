#!/usr/bin/env python3
"""A stand-in for LLenergyMeasure v0.8's study loader, the peer of llem-expand's benchmark.

The original cannot be installed here (no PyPI), so this re-implements what
LLenergyMeasure's documentation says its loader does, with the same
libraries (PyYAML, pydantic 2): its `expand_grid` algorithm, one pydantic
ExperimentConfig per generated dict (extra=forbid top level, range-checked fields, the
decoder/warmup/baseline/energy/dataset sub-models, an extra=allow backend section), its
identity hash (SHA-256 over json.dumps(model_dump(), sort_keys=True)), the
study hash over the valid pre-cycling list, and `apply_cycles`. Like the original it
builds every list in memory before anything is written. It writes one JSON line per run, as
llem-expand does, so both are timed on the same work.

    original_loader.py study.yaml > runs.ndjson

It is written from that description, not copied: its speed is an estimate of the original's, and
is labelled so wherever its figures are quoted.
"""
import hashlib
import itertools
import json
import random
import sys
from typing import Any, Dict, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DecoderConfig(Strict):
    temperature: float = Field(1.0, ge=0, le=2)
    do_sample: bool = True
    top_k: int = Field(50, ge=0)
    top_p: float = Field(1.0, ge=0, le=1)
    repetition_penalty: float = Field(1.0, ge=0.1, le=10)
    min_p: Optional[float] = Field(None, ge=0, le=1)
    min_new_tokens: Optional[int] = Field(None, ge=1)
    preset: Optional[Literal["deterministic", "standard", "creative", "factual"]] = None


class WarmupConfig(Strict):
    enabled: bool = True
    n_warmup: int = Field(5, ge=1)
    thermal_floor_seconds: float = Field(60.0, ge=30)
    convergence_detection: bool = False
    cv_threshold: float = Field(0.05, ge=0.01, le=0.5)
    max_prompts: int = Field(20, ge=5)
    window_size: int = Field(5, ge=3)
    min_prompts: int = Field(5, ge=1)


class BaselineConfig(Strict):
    enabled: bool = True
    duration_seconds: float = Field(30.0, ge=5, le=120)


class EnergyConfig(Strict):
    backend: Optional[Literal["auto", "nvml", "zeus", "codecarbon"]] = "auto"


class SyntheticDatasetConfig(Strict):
    n: int = Field(..., ge=1)
    input_len: int = Field(512, ge=1)
    output_len: int = Field(128, ge=1)
    seed: int = 42


class PyTorchConfig(BaseModel):
    model_config = ConfigDict(extra="allow")
    batch_size: Optional[int] = Field(None, ge=1)
    attn_implementation: Optional[Literal["sdpa", "flash_attention_2", "flash_attention_3", "eager"]] = None
    torch_compile: Optional[bool] = None
    load_in_4bit: Optional[bool] = None
    load_in_8bit: Optional[bool] = None
    num_beams: Optional[int] = Field(None, ge=1)
    device_map: Optional[str] = None

    @model_validator(mode="after")
    def _quant(self):
        if self.load_in_4bit and self.load_in_8bit:
            raise ValueError("load_in_4bit and load_in_8bit are exclusive")
        return self


class ExperimentConfig(Strict):
    model: str = Field(..., min_length=1)
    backend: Literal["pytorch", "vllm", "tensorrt"] = "pytorch"
    n: int = Field(100, ge=1)
    dataset: Union[str, SyntheticDatasetConfig] = "aienergyscore"
    dataset_order: Literal["interleaved", "grouped", "shuffled"] = "interleaved"
    precision: Literal["fp32", "fp16", "bf16"] = "bf16"
    random_seed: int = 42
    max_input_tokens: int = Field(512, ge=1)
    max_output_tokens: int = Field(128, ge=1)
    decoder: DecoderConfig = DecoderConfig()
    warmup: WarmupConfig = WarmupConfig()
    baseline: BaselineConfig = BaselineConfig()
    energy: EnergyConfig = EnergyConfig()
    pytorch: Optional[PyTorchConfig] = None
    vllm: Optional[Dict[str, Any]] = None
    tensorrt: Optional[Dict[str, Any]] = None
    lora: Optional[Dict[str, Any]] = None
    passthrough_kwargs: Optional[Dict[str, Any]] = None
    output_dir: Optional[str] = None

    @model_validator(mode="after")
    def _sections(self):
        for b in ("pytorch", "vllm", "tensorrt"):
            if getattr(self, b) is not None and self.backend != b:
                raise ValueError(f"{b}: section given but backend is {self.backend}")
        return self


STUDY_KEYS = {"sweep", "experiments", "execution", "base", "name", "version", "runners"}


def unflatten_once(d):
    out = {}
    for k, v in d.items():
        head, _, rest = k.partition(".")
        if rest:
            out.setdefault(head, {})[rest] = v
        else:
            out[k] = v
    return out


def deep_merge(a, b):
    r = dict(a)
    for k, v in b.items():
        r[k] = deep_merge(r[k], v) if isinstance(r.get(k), dict) and isinstance(v, dict) else v
    return r


def expand_grid(raw):
    fixed = {k: v for k, v in raw.items() if k not in STUDY_KEYS}
    sweep = raw.get("sweep") or {}
    universal, scoped = {}, {}
    for key, values in sweep.items():
        values = values if isinstance(values, list) else [values]
        head, _, rest = key.partition(".")
        if rest:
            scoped.setdefault(head, {})[rest] = values
        else:
            universal[key] = values
    if isinstance(fixed.get("backend"), list):
        backends = fixed["backend"]
    elif scoped:
        backends = list(scoped)
    else:
        backends = [fixed.get("backend") or "pytorch"]
    cfgs = []
    for b in backends:
        dims = [(k, v, False) for k, v in universal.items()] + [(k, v, True) for k, v in scoped.get(b, {}).items()]
        if not dims:
            cfgs.append({**fixed, "backend": b})
            continue
        for combo in itertools.product(*[d[1] for d in dims]):
            cfg = dict(fixed)
            cfg["backend"] = b
            for (key, _, is_scoped), v in zip(dims, combo):
                if is_scoped:
                    cfg[b] = deep_merge(cfg.get(b) or {}, unflatten_once({key: v}))
                else:
                    cfg[key] = v
            cfgs.append(cfg)
    cfgs += [{**fixed, **e} for e in raw.get("experiments") or []]
    return cfgs


def config_hash(dumped):
    return hashlib.sha256(json.dumps(dumped, sort_keys=True).encode()).hexdigest()[:16]


def main(path):
    with open(path) as f:
        raw = yaml.safe_load(f)
    valid, skipped = [], 0
    for cfg in expand_grid(raw):
        try:
            valid.append(ExperimentConfig(**cfg).model_dump())
        except Exception:
            skipped += 1
    if not valid:
        sys.exit(f"{path}: nothing to run")
    study_hash = hashlib.sha256(json.dumps(valid, sort_keys=True).encode()).hexdigest()[:16]
    ex = raw.get("execution") or {}
    n_cycles, order = ex.get("n_cycles", 3), ex.get("cycle_order", "shuffled")
    ids = [config_hash(d) for d in valid]
    if order == "sequential":
        plan = [(i, c) for i in range(len(valid)) for c in range(n_cycles)]
    elif order == "interleaved":
        plan = [(i, c) for c in range(n_cycles) for i in range(len(valid))]
    else:
        plan = []
        for c in range(n_cycles):
            idx = list(range(len(valid)))
            random.Random(42 + c).shuffle(idx)
            plan += [(i, c) for i in idx]
    out = sys.stdout
    for seq, (i, c) in enumerate(plan):
        out.write(json.dumps({"kind": "experiment", "study_hash": study_hash, "id": ids[i], "seq": seq,
                              "cycle": c + 1, "n_cycles": n_cycles, "config": valid[i]}) + "\n")
    print(f"original_loader: {len(valid)} configs, {skipped} skipped, {len(plan)} runs", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1])
