package native

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// stTensor is one tensor to write.
type stTensor struct {
	name  string
	shape []int64
	data  []float32
}

// writeSafetensors writes tensors in dtype (F32, F16 or BF16; F16 only for
// values it represents) — an independent writer of the format.
func writeSafetensors(t testing.TB, path, dtype string, ts []stTensor) {
	t.Helper()
	hdr := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	var data bytes.Buffer
	for _, x := range ts {
		begin := data.Len()
		for _, v := range x.data {
			switch dtype {
			case "F32":
				binary.Write(&data, binary.LittleEndian, math.Float32bits(v))
			case "BF16":
				binary.Write(&data, binary.LittleEndian, uint16(math.Float32bits(v)>>16))
			case "F16":
				binary.Write(&data, binary.LittleEndian, f32ToF16(v))
			}
		}
		hdr[x.name] = map[string]any{"dtype": dtype, "shape": x.shape, "data_offsets": []int{begin, data.Len()}}
	}
	h, _ := json.Marshal(hdr)
	var out bytes.Buffer
	binary.Write(&out, binary.LittleEndian, uint64(len(h)))
	out.Write(h)
	out.Write(data.Bytes())
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// f32ToF16 converts normal values that fit half precision (truncating).
func f32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int((b>>23)&0xff) - 127 + 15
	if f == 0 {
		return sign
	}
	return sign | uint16(exp)<<10 | uint16((b>>13)&0x3ff)
}

// saveModel writes m as a Hugging Face Llama checkpoint directory.
func saveModel(t testing.TB, m *Model, dtype string, tied bool) string {
	dir := t.TempDir()
	a := m.Arch
	h, hd := int64(a.HiddenSize), int64(m.HeadDim)
	q, kv, ff, v := int64(a.Heads)*hd, int64(a.KVHeads)*hd, int64(a.FFNSize), int64(a.VocabSize)
	ts := []stTensor{{"model.embed_tokens.weight", []int64{v, h}, m.Embed}, {"model.norm.weight", []int64{h}, m.Norm}}
	if !tied {
		ts = append(ts, stTensor{"lm_head.weight", []int64{v, h}, m.LMHead})
	}
	for i, L := range m.Layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		ts = append(ts,
			stTensor{p + "input_layernorm.weight", []int64{h}, L.AttnNorm},
			stTensor{p + "self_attn.q_proj.weight", []int64{q, h}, L.WQ},
			stTensor{p + "self_attn.k_proj.weight", []int64{kv, h}, L.WK},
			stTensor{p + "self_attn.v_proj.weight", []int64{kv, h}, L.WV},
			stTensor{p + "self_attn.o_proj.weight", []int64{h, q}, L.WO},
			stTensor{p + "post_attention_layernorm.weight", []int64{h}, L.MLPNorm},
			stTensor{p + "mlp.gate_proj.weight", []int64{ff, h}, L.WGate},
			stTensor{p + "mlp.up_proj.weight", []int64{ff, h}, L.WUp},
			stTensor{p + "mlp.down_proj.weight", []int64{h, ff}, L.WDown})
	}
	// two shards with an index, as larger checkpoints come
	half := len(ts) / 2
	writeSafetensors(t, filepath.Join(dir, "model-00001-of-00002.safetensors"), dtype, ts[:half])
	writeSafetensors(t, filepath.Join(dir, "model-00002-of-00002.safetensors"), dtype, ts[half:])
	wm := map[string]string{}
	for i, x := range ts {
		wm[x.name] = map[bool]string{true: "model-00001-of-00002.safetensors", false: "model-00002-of-00002.safetensors"}[i < half]
	}
	b, _ := json.Marshal(map[string]any{"weight_map": wm})
	os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), b, 0o644)
	cfg := map[string]any{"architectures": []string{"LlamaForCausalLM"}, "model_type": "llama", "hidden_size": a.HiddenSize,
		"intermediate_size": a.FFNSize, "num_hidden_layers": a.Layers, "num_attention_heads": a.Heads, "num_key_value_heads": a.KVHeads,
		"vocab_size": a.VocabSize, "max_position_embeddings": a.MaxSeqLen, "rms_norm_eps": NormEps, "rope_theta": RopeTheta,
		"hidden_act": "silu", "tie_word_embeddings": tied, "torch_dtype": "float32"}
	b, _ = json.Marshal(cfg)
	os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644)
	return dir
}

// TestLoadLlamaF32: a model saved and loaded gives the same logits, bit for bit.
func TestLoadLlamaF32(t *testing.T) {
	m, _ := NewSynthetic(testArch, 5)
	got, err := LoadLlama(saveModel(t, m, "F32", false))
	if err != nil {
		t.Fatal(err)
	}
	toks, slots, pos := seq(6)
	e1, _ := NewEngine(m, Options{Threads: 1, Slots: 1, MaxSeq: 16, MaxRows: 16})
	e2, _ := NewEngine(got, Options{Threads: 1, Slots: 1, MaxSeq: 16, MaxRows: 16})
	defer e1.Close()
	defer e2.Close()
	a, _ := e1.Forward(toks, slots, pos, []int{5})
	b, _ := e2.Forward(toks, slots, pos, []int{5})
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			t.Fatalf("logit %d: loaded %g, original %g", i, b[i], a[i])
		}
	}
	if got.Params() != Params(testArch) || got.Tied {
		t.Fatalf("params %d", got.Params())
	}
}

// TestLoadLlamaHalf: BF16 keeps the top 16 bits of each float32; F16 values
// convert exactly; a tied checkpoint shares the embedding.
func TestLoadLlamaHalf(t *testing.T) {
	m, _ := NewSynthetic(testArch, 6)
	got, err := LoadLlama(saveModel(t, m, "BF16", true))
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range m.Layers[1].WGate {
		if want := math.Float32frombits(math.Float32bits(w) &^ 0xffff); got.Layers[1].WGate[i] != want {
			t.Fatalf("bf16 %d: %g, want %g", i, got.Layers[1].WGate[i], want)
		}
	}
	if !got.Tied || &got.LMHead[0] != &got.Embed[0] || got.Params() != Params(testArch)-int64(testArch.VocabSize*testArch.HiddenSize) {
		t.Fatal("tied embeddings not shared or miscounted")
	}
	got, err = LoadLlama(saveModel(t, m, "F16", false))
	if err != nil {
		t.Fatal(err)
	}
	w := m.Layers[0].WQ[3]
	if d := math.Abs(float64(got.Layers[0].WQ[3] - w)); d > math.Abs(float64(w))/1024 {
		t.Fatalf("f16: %g, want %g", got.Layers[0].WQ[3], w)
	}
}

func TestF16(t *testing.T) {
	for h, want := range map[uint16]float32{0x3c00: 1, 0xc000: -2, 0x7bff: 65504, 0x0001: float32(math.Ldexp(1, -24)),
		0x0400: float32(math.Ldexp(1, -14)), 0x8000: float32(math.Copysign(0, -1)), 0x3555: 0.333251953125} {
		if got := f16ToF32(h); got != want || math.Signbit(float64(got)) != math.Signbit(float64(want)) {
			t.Errorf("f16 %#04x = %g, want %g", h, got, want)
		}
	}
	if !math.IsInf(float64(f16ToF32(0xfc00)), -1) || !math.IsNaN(float64(f16ToF32(0x7e00))) {
		t.Error("f16 inf/nan")
	}
}

func header(h string, data int) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint64(len(h)))
	b.WriteString(h)
	b.Write(make([]byte, data))
	return b.Bytes()
}

func TestSafetensorsHostileHeaders(t *testing.T) {
	huge := make([]byte, 8)
	binary.LittleEndian.PutUint64(huge, 1<<62)
	for _, c := range []struct {
		name string
		file []byte
		want string
	}{
		{"short", []byte{1, 2}, "shorter"},
		{"header past end", huge, "exceeds"},
		{"not json", header(`nope`, 0), "not a JSON object"},
		{"array", header(`[1]`, 0), "not a JSON object"},
		{"offsets past data", header(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 4), "outside"},
		{"negative offset", header(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}`, 4), "outside"},
		{"end before begin", header(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}`, 4), "outside"},
		{"size mismatch", header(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, 8), "data_offsets give"},
		{"negative dim", header(`{"a":{"dtype":"F32","shape":[-1,-8],"data_offsets":[0,8]}}`, 8), "bad shape"},
		{"overflow", header(`{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}}`, 8), "bad shape"},
		{"unknown field", header(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, 4), "unknown field"},
		{"one offset", header(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}`, 4), "outside"},
	} {
		_, _, err := ParseSafetensorsHeader(bytes.NewReader(c.file), int64(len(c.file)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// an unsupported dtype parses, and is an error only when read
	p := filepath.Join(t.TempDir(), "m.safetensors")
	os.WriteFile(p, header(`{"a":{"dtype":"I8","shape":[4],"data_offsets":[0,4]}}`, 4), 0o644)
	f, err := OpenSafetensors(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Read("a", 4); err == nil || !strings.Contains(err.Error(), "dtype I8") {
		t.Fatalf("I8 read: %v", err)
	}
}

func TestLoadLlamaRejects(t *testing.T) {
	m, _ := NewSynthetic(testArch, 5)
	dir := saveModel(t, m, "F32", false)
	cfgPath := filepath.Join(dir, "config.json")
	orig, _ := os.ReadFile(cfgPath)
	for _, c := range []struct{ edit, want string }{
		{`"hidden_act":"gelu"`, "hidden_act"},
		{`"model_type":"gpt2"`, "model_type"},
		{`"rope_scaling":{"type":"linear"}`, "rope_scaling"},
		{`"rope_scaling":{"rope_type":"yarn","factor":4}`, "yarn"},
		{`"rope_scaling":{"rope_type":"llama3","factor":8}`, "low_freq_factor"},
		{`"model_type":"qwen3"`, "model_type"},
		{`"mlp_bias":true`, "MLP biases"},
		{`"use_sliding_window":true`, "use_sliding_window"},
		{`"attention_bias":true`, "q_proj.bias"},
		{`"head_dim":33`, "odd"},
		{`"num_key_value_heads":3`, "kv_heads"},
	} {
		var cfg map[string]any
		json.Unmarshal(orig, &cfg)
		var kv map[string]any
		json.Unmarshal([]byte("{"+c.edit+"}"), &kv)
		for k, v := range kv {
			cfg[k] = v
		}
		b, _ := json.Marshal(cfg)
		os.WriteFile(cfgPath, b, 0o644)
		if _, err := LoadLlama(dir); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v", c.edit, err)
		}
	}
	os.WriteFile(cfgPath, orig, 0o644)
	os.Remove(filepath.Join(dir, "model-00002-of-00002.safetensors"))
	if _, err := LoadLlama(dir); err == nil {
		t.Error("missing shard accepted")
	}
}

func FuzzSafetensorsHeader(f *testing.F) {
	f.Add(header(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 8))
	f.Add(header(`{"__metadata__":{"x":"y"},"b":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]}}`, 8))
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, base, err := ParseSafetensorsHeader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		for n, x := range ts {
			if x.Offsets[0] < 0 || x.Offsets[1] < x.Offsets[0] || base+x.Offsets[1] > int64(len(b)) {
				t.Fatalf("tensor %q accepted with offsets %v (base %d, size %d)", n, x.Offsets, base, len(b))
			}
		}
	})
}

// TestSaveLlama: SaveLlama's checkpoint loads back to the same weights.
func TestSaveLlama(t *testing.T) {
	m, _ := NewSynthetic(testArch, 9)
	dir := t.TempDir()
	if err := SaveLlama(m, dir); err != nil {
		t.Fatal(err)
	}
	got, err := LoadLlama(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Arch != m.Arch || got.RopeTheta != m.RopeTheta || got.NormEps != m.NormEps {
		t.Fatalf("arch %+v, want %+v", got.Arch, m.Arch)
	}
	for i := range m.Layers {
		for j, w := range m.Layers[i].WDown {
			if got.Layers[i].WDown[j] != w {
				t.Fatalf("layer %d WDown[%d] differs", i, j)
			}
		}
	}
	if !slicesEqual(got.LMHead, m.LMHead) || !slicesEqual(got.Embed, m.Embed) {
		t.Fatal("embeddings or LM head differ")
	}
}

func slicesEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func TestParseEOS(t *testing.T) {
	for _, c := range []struct {
		raw  string
		want int32
		err  bool
	}{{"", EOS, false}, {"null", EOS, false}, {"7", 7, false}, {"[9, 3]", 9, false}, {"[]", EOS, false},
		{"300", 0, true}, {"-1", 0, true}, {`"x"`, 0, true}} {
		got, err := parseEOS([]byte(c.raw), 300)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("eos_token_id %s: %d, %v", c.raw, got, err)
		}
	}
}
