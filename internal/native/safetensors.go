package native

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"

	"github.com/llem/llem/internal/atomicfile"
)

// Reading Llama-family checkpoints in the safetensors format: an 8-byte
// little-endian header length N, N bytes of JSON mapping tensor names to
// {dtype, shape, data_offsets [begin, end)} (offsets relative to the byte
// after the header), then the data. The header comes from a file someone
// downloaded, so every number in it is checked before it is used: header
// size, offsets inside the file, begin ≤ end, byte length = product of the
// shape × element size with no overflow, bounded tensor count and rank.

// Limits on a safetensors header.
const (
	MaxHeaderBytes = 100 << 20 // the format's own limit
	maxTensors     = 1 << 20
	maxRank        = 8
)

// TensorInfo is one tensor of a safetensors file.
type TensorInfo struct {
	DType   string  `json:"dtype"`
	Shape   []int64 `json:"shape"`
	Offsets []int64 `json:"data_offsets"`
}

// SafetensorsFile is an open safetensors file with its checked header.
type SafetensorsFile struct {
	Path    string
	Tensors map[string]TensorInfo
	f       *os.File
	base    int64 // file offset of the data section
}

func elemSize(dtype string) (int64, bool) {
	switch dtype {
	case "F32":
		return 4, true
	case "F16", "BF16":
		return 2, true
	}
	return 0, false
}

// ParseSafetensorsHeader reads and checks the header of a safetensors
// stream of total size bytes. Tensors of dtypes other than F32, F16 and
// BF16 are kept with their dtype (checked for bounds only) so that an error
// can name them if they are needed.
func ParseSafetensorsHeader(r io.ReaderAt, size int64) (map[string]TensorInfo, int64, error) {
	var lenBuf [8]byte
	if size < 8 {
		return nil, 0, errors.New("safetensors: file shorter than its 8-byte header length")
	}
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, 0, fmt.Errorf("safetensors: read header length: %w", err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderBytes || int64(n) > size-8 {
		return nil, 0, fmt.Errorf("safetensors: header length %d exceeds the file (%d bytes) or the %d-byte limit", n, size, MaxHeaderBytes)
	}
	hdr := make([]byte, n)
	if _, err := r.ReadAt(hdr, 8); err != nil {
		return nil, 0, fmt.Errorf("safetensors: read header: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		return nil, 0, fmt.Errorf("safetensors: header is not a JSON object: %v", err)
	}
	if len(raw) > maxTensors {
		return nil, 0, fmt.Errorf("safetensors: %d tensors, more than %d", len(raw), maxTensors)
	}
	base := 8 + int64(n)
	dataLen := size - base
	out := make(map[string]TensorInfo, len(raw))
	for name, v := range raw {
		if name == "__metadata__" {
			continue
		}
		var t TensorInfo
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&t); err != nil {
			return nil, 0, fmt.Errorf("safetensors: tensor %q: %v", name, err)
		}
		if len(t.Offsets) != 2 || t.Offsets[0] < 0 || t.Offsets[1] < t.Offsets[0] || t.Offsets[1] > dataLen {
			return nil, 0, fmt.Errorf("safetensors: tensor %q: data_offsets %v outside the %d data bytes", name, t.Offsets, dataLen)
		}
		if len(t.Shape) > maxRank {
			return nil, 0, fmt.Errorf("safetensors: tensor %q: rank %d", name, len(t.Shape))
		}
		es, known := elemSize(t.DType)
		if !known {
			out[name] = t // unsupported dtype: an error if the model needs it
			continue
		}
		count := int64(1)
		for _, d := range t.Shape {
			if d < 0 || (d > 0 && count > math.MaxInt64/es/d) {
				return nil, 0, fmt.Errorf("safetensors: tensor %q: bad shape %v", name, t.Shape)
			}
			count *= d
		}
		if count*es != t.Offsets[1]-t.Offsets[0] {
			return nil, 0, fmt.Errorf("safetensors: tensor %q: shape %v of %s is %d bytes, data_offsets give %d", name, t.Shape, t.DType, count*es, t.Offsets[1]-t.Offsets[0])
		}
		out[name] = t
	}
	return out, base, nil
}

// OpenSafetensors opens a file and checks its header.
func OpenSafetensors(path string) (*SafetensorsFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	ts, base, err := ParseSafetensorsHeader(f, st.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &SafetensorsFile{Path: path, Tensors: ts, f: f, base: base}, nil
}

// Close closes the file.
func (s *SafetensorsFile) Close() error { return s.f.Close() }

// Read converts tensor name, which must have the given shape, to float32.
func (s *SafetensorsFile) Read(name string, shape ...int64) ([]float32, error) {
	t, ok := s.Tensors[name]
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %q", s.Path, name)
	}
	es, known := elemSize(t.DType)
	if !known {
		return nil, fmt.Errorf("%s: tensor %q has dtype %s; F32, F16 and BF16 are supported", s.Path, name, t.DType)
	}
	if len(t.Shape) != len(shape) {
		return nil, fmt.Errorf("%s: tensor %q has shape %v, want %v", s.Path, name, t.Shape, shape)
	}
	for i := range shape {
		if t.Shape[i] != shape[i] {
			return nil, fmt.Errorf("%s: tensor %q has shape %v, want %v", s.Path, name, t.Shape, shape)
		}
	}
	nb := t.Offsets[1] - t.Offsets[0]
	buf := make([]byte, nb)
	if _, err := s.f.ReadAt(buf, s.base+t.Offsets[0]); err != nil {
		return nil, fmt.Errorf("%s: read %q: %w", s.Path, name, err)
	}
	out := make([]float32, nb/es)
	switch t.DType {
	case "F32":
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
		}
	case "BF16":
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(buf[2*i:])) << 16)
		}
	case "F16":
		for i := range out {
			out[i] = f16ToF32(binary.LittleEndian.Uint16(buf[2*i:]))
		}
	}
	return out, nil
}

// f16ToF32 converts an IEEE 754 half-precision value exactly.
func f16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf, nan
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: mant · 2^-24
		f := float32(mant) * (1.0 / (1 << 24))
		if sign != 0 {
			f = -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// llamaConfig is the part of a Hugging Face LlamaConfig (config.json) the
// engine needs.
type llamaConfig struct {
	Architectures         []string        `json:"architectures"`
	ModelType             string          `json:"model_type"`
	HiddenSize            int             `json:"hidden_size"`
	IntermediateSize      int             `json:"intermediate_size"`
	NumHiddenLayers       int             `json:"num_hidden_layers"`
	NumAttentionHeads     int             `json:"num_attention_heads"`
	NumKeyValueHeads      int             `json:"num_key_value_heads"`
	HeadDim               int             `json:"head_dim"`
	VocabSize             int             `json:"vocab_size"`
	MaxPositionEmbeddings int             `json:"max_position_embeddings"`
	RMSNormEps            float64         `json:"rms_norm_eps"`
	RopeTheta             float64         `json:"rope_theta"`
	RopeScaling           json.RawMessage `json:"rope_scaling"`
	UseSlidingWindow      bool            `json:"use_sliding_window"`
	EOSTokenID            json.RawMessage `json:"eos_token_id"`
	TieWordEmbeddings     bool            `json:"tie_word_embeddings"`
	HiddenAct             string          `json:"hidden_act"`
	AttentionBias         bool            `json:"attention_bias"`
	MLPBias               bool            `json:"mlp_bias"`
}

// readLlamaConfig reads and checks a checkpoint's config.json.
func readLlamaConfig(dir string) (llamaConfig, Arch, error) {
	var c llamaConfig
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return c, Arch{}, fmt.Errorf("native.weights_path: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, Arch{}, fmt.Errorf("%s: %v", filepath.Join(dir, "config.json"), err)
	}
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	if c.RMSNormEps == 0 {
		c.RMSNormEps = 1e-6
	}
	if c.RopeTheta == 0 {
		c.RopeTheta = 10000
	}
	switch {
	case c.ModelType != "" && c.ModelType != "llama" && c.ModelType != "mistral" && c.ModelType != "qwen2":
		return c, Arch{}, fmt.Errorf("%s: model_type %q; the native engine runs llama, mistral and qwen2 models", dir, c.ModelType)
	case c.UseSlidingWindow:
		return c, Arch{}, fmt.Errorf("%s: use_sliding_window is not supported", dir)
	case c.HiddenAct != "" && c.HiddenAct != "silu":
		return c, Arch{}, fmt.Errorf("%s: hidden_act %q; the native engine has SiLU only", dir, c.HiddenAct)
	case c.MLPBias:
		return c, Arch{}, fmt.Errorf("%s: MLP biases are not supported", dir)
	}
	a := Arch{Layers: c.NumHiddenLayers, HiddenSize: c.HiddenSize, Heads: c.NumAttentionHeads, KVHeads: c.NumKeyValueHeads,
		FFNSize: c.IntermediateSize, VocabSize: c.VocabSize, MaxSeqLen: c.MaxPositionEmbeddings}
	if err := validate(a, c.HeadDim); err != nil {
		return c, Arch{}, fmt.Errorf("%s/config.json: %w", dir, err)
	}
	return c, a, nil
}

// LoadLlama loads a Llama-family checkpoint from dir: config.json and
// model.safetensors, or the shards named by model.safetensors.index.json.
// Only what the engine computes exactly is accepted: SiLU MLP, no MLP
// biases, rope_scaling none or llama3.
func LoadLlama(dir string) (*Model, error) {
	c, a, err := readLlamaConfig(dir)
	if err != nil {
		return nil, err
	}
	scaling, err := parseRopeScaling(c.RopeScaling)
	if err != nil {
		return nil, fmt.Errorf("%s/config.json: %w", dir, err)
	}
	eos, err := parseEOS(c.EOSTokenID, c.VocabSize)
	if err != nil {
		return nil, fmt.Errorf("%s/config.json: %w", dir, err)
	}
	files, err := shardFiles(dir)
	if err != nil {
		return nil, err
	}
	byName := map[string]*SafetensorsFile{}
	for _, p := range files {
		f, err := OpenSafetensors(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		for n := range f.Tensors {
			byName[n] = f
		}
	}
	read := func(name string, shape ...int64) ([]float32, error) {
		f := byName[name]
		if f == nil {
			return nil, fmt.Errorf("%s: no tensor %q in %v", dir, name, files)
		}
		return f.Read(name, shape...)
	}
	hd := a.HiddenSize / a.Heads
	if c.HeadDim != 0 {
		hd = c.HeadDim
	}
	h, q, kv, ff, v := int64(a.HiddenSize), int64(a.Heads*hd), int64(a.KVHeads*hd), int64(a.FFNSize), int64(a.VocabSize)
	m := &Model{Arch: a, HeadDim: hd, RopeTheta: c.RopeTheta, NormEps: c.RMSNormEps, Layers: make([]Layer, a.Layers),
		RopeScaling: scaling, ModelType: c.ModelType, EOS: eos}
	if m.Embed, err = read("model.embed_tokens.weight", v, h); err != nil {
		return nil, err
	}
	for i := range m.Layers {
		if err := readLayer(&m.Layers[i], i, read, h, q, kv, ff); err != nil {
			return nil, err
		}
		if err := readBiases(&m.Layers[i], fmt.Sprintf("model.layers.%d.", i), c.ModelType == "qwen2", c.AttentionBias, q, kv, h, read); err != nil {
			return nil, err
		}
	}
	if m.Norm, err = read("model.norm.weight", h); err != nil {
		return nil, err
	}
	if _, ok := byName["lm_head.weight"]; ok && !c.TieWordEmbeddings {
		if m.LMHead, err = read("lm_head.weight", v, h); err != nil {
			return nil, err
		}
	} else {
		m.LMHead, m.Tied = m.Embed, true
	}
	return m, nil
}

// readLayer reads layer i's tensors, checking their shapes.
func readLayer(L *Layer, i int, read func(name string, shape ...int64) ([]float32, error), h, q, kv, ff int64) error {
	p := fmt.Sprintf("model.layers.%d.", i)
	for _, t := range []struct {
		dst   *[]float32
		name  string
		shape []int64
	}{
		{&L.AttnNorm, "input_layernorm.weight", []int64{h}},
		{&L.WQ, "self_attn.q_proj.weight", []int64{q, h}},
		{&L.WK, "self_attn.k_proj.weight", []int64{kv, h}},
		{&L.WV, "self_attn.v_proj.weight", []int64{kv, h}},
		{&L.WO, "self_attn.o_proj.weight", []int64{h, q}},
		{&L.MLPNorm, "post_attention_layernorm.weight", []int64{h}},
		{&L.WGate, "mlp.gate_proj.weight", []int64{ff, h}},
		{&L.WUp, "mlp.up_proj.weight", []int64{ff, h}},
		{&L.WDown, "mlp.down_proj.weight", []int64{h, ff}},
	} {
		var err error
		if *t.dst, err = read(p+t.name, t.shape...); err != nil {
			return err
		}
	}
	return nil
}

// readBiases reads a layer's attention biases: q, k and v where qkv (Qwen2
// always has them), all four where all (Llama's attention_bias).
func readBiases(L *Layer, p string, qkv, all bool, q, kv, h int64, read func(string, ...int64) ([]float32, error)) error {
	var err error
	if qkv || all {
		if L.BQ, err = read(p+"self_attn.q_proj.bias", q); err != nil {
			return err
		}
		if L.BK, err = read(p+"self_attn.k_proj.bias", kv); err != nil {
			return err
		}
		if L.BV, err = read(p+"self_attn.v_proj.bias", kv); err != nil {
			return err
		}
	}
	if all {
		L.BO, err = read(p+"self_attn.o_proj.bias", h)
	}
	return err
}

// parseEOS reads eos_token_id: absent or null (0, the synthetic models'
// EOS), an id, or a list of ids (Llama 3), of which the first is used.
func parseEOS(raw json.RawMessage, vocab int) (int32, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return EOS, nil
	}
	var ids []int64
	if err := json.Unmarshal(raw, &ids); err != nil {
		var id int64
		if err := json.Unmarshal(raw, &id); err != nil {
			return 0, fmt.Errorf("eos_token_id %s: want an id or a list of ids", raw)
		}
		ids = []int64{id}
	}
	if len(ids) == 0 {
		return EOS, nil
	}
	if ids[0] < 0 || ids[0] >= int64(vocab) {
		return 0, fmt.Errorf("eos_token_id %d outside the vocabulary (%d)", ids[0], vocab)
	}
	return int32(ids[0]), nil
}

// parseRopeScaling reads config.json's rope_scaling: null, or type
// "llama3" (Llama 3.1/3.2), the one scaling the engine implements. Hugging
// Face writes the type as rope_type (older configs: type).
func parseRopeScaling(raw json.RawMessage) (*RopeScaling, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var rs struct {
		RopeScaling
		RopeType string `json:"rope_type"`
		Type     string `json:"type"`
	}
	if err := json.Unmarshal(raw, &rs); err != nil {
		return nil, fmt.Errorf("rope_scaling: %v", err)
	}
	typ := rs.RopeType
	if typ == "" {
		typ = rs.Type
	}
	sc := rs.RopeScaling
	switch {
	case typ == "default":
		return nil, nil
	case typ != "llama3":
		return nil, fmt.Errorf("rope_scaling of type %q is not supported (the engine implements llama3)", typ)
	case sc.Factor <= 0 || sc.LowFreqFactor <= 0 || sc.HighFreqFactor <= sc.LowFreqFactor || sc.OrigMaxPos <= 0:
		return nil, fmt.Errorf("rope_scaling llama3: want factor > 0, 0 < low_freq_factor < high_freq_factor, original_max_position_embeddings > 0; got %+v", sc)
	}
	return &sc, nil
}

// shardFiles lists the safetensors files of a checkpoint directory.
func shardFiles(dir string) ([]string, error) {
	idx := filepath.Join(dir, "model.safetensors.index.json")
	b, err := os.ReadFile(idx)
	if errors.Is(err, os.ErrNotExist) {
		return []string{filepath.Join(dir, "model.safetensors")}, nil
	}
	if err != nil {
		return nil, err
	}
	var ix struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(b, &ix); err != nil {
		return nil, fmt.Errorf("%s: %v", idx, err)
	}
	seen := map[string]bool{}
	var files []string
	for _, f := range ix.WeightMap {
		if f != filepath.Base(f) || filepath.Ext(f) != ".safetensors" {
			return nil, fmt.Errorf("%s: shard %q is not a .safetensors file in the same directory", idx, f)
		}
		if !seen[f] {
			seen[f] = true
			files = append(files, filepath.Join(dir, f))
		}
	}
	sort.Strings(files)
	return files, nil
}

// SaveLlama writes m as a Hugging Face Llama checkpoint in dir: config.json
// and model.safetensors (F32). A synthetic model saved this way can be
// loaded back (native.weights_path) or run by another backend, so that the
// same weights are measured on several engines.
func SaveLlama(m *Model, dir string) error {
	a := m.Arch
	h, hd := int64(a.HiddenSize), int64(m.HeadDim)
	q, kv, ff, v := int64(a.Heads)*hd, int64(a.KVHeads)*hd, int64(a.FFNSize), int64(a.VocabSize)
	type tensor struct {
		name  string
		shape []int64
		data  []float32
	}
	ts := []tensor{{"model.embed_tokens.weight", []int64{v, h}, m.Embed}, {"model.norm.weight", []int64{h}, m.Norm}}
	if !m.Tied {
		ts = append(ts, tensor{"lm_head.weight", []int64{v, h}, m.LMHead})
	}
	for i, L := range m.Layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		ts = append(ts,
			tensor{p + "input_layernorm.weight", []int64{h}, L.AttnNorm},
			tensor{p + "self_attn.q_proj.weight", []int64{q, h}, L.WQ},
			tensor{p + "self_attn.k_proj.weight", []int64{kv, h}, L.WK},
			tensor{p + "self_attn.v_proj.weight", []int64{kv, h}, L.WV},
			tensor{p + "self_attn.o_proj.weight", []int64{h, q}, L.WO},
			tensor{p + "post_attention_layernorm.weight", []int64{h}, L.MLPNorm},
			tensor{p + "mlp.gate_proj.weight", []int64{ff, h}, L.WGate},
			tensor{p + "mlp.up_proj.weight", []int64{ff, h}, L.WUp},
			tensor{p + "mlp.down_proj.weight", []int64{h, ff}, L.WDown})
		for _, b := range []struct {
			name string
			data []float32
		}{{"q_proj", L.BQ}, {"k_proj", L.BK}, {"v_proj", L.BV}, {"o_proj", L.BO}} {
			if b.data != nil {
				ts = append(ts, tensor{p + "self_attn." + b.name + ".bias", []int64{int64(len(b.data))}, b.data})
			}
		}
	}
	hdr := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	var off int64
	for _, t := range ts {
		n := 4 * int64(len(t.data))
		hdr[t.name] = TensorInfo{DType: "F32", Shape: t.shape, Offsets: []int64{off, off + n}}
		off += n
	}
	hb, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	for len(hb)%8 != 0 { // the format pads the header with spaces to align the data
		hb = append(hb, ' ')
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	err = atomicfile.Write(filepath.Join(dir, "model.safetensors"), func(w io.Writer) error {
		var lenBuf [8]byte
		binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hb)))
		w.Write(lenBuf[:])
		w.Write(hb)
		var fb [4]byte
		for _, t := range ts {
			for _, x := range t.data {
				binary.LittleEndian.PutUint32(fb[:], math.Float32bits(x))
				// A write error sticks in the buffer atomicfile gives; its
				// flush returns it.
				w.Write(fb[:])
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(filepath.Join(dir, "config.json"), append(m.configJSON(), '\n'))
}

// configJSON is m's config.json: a LlamaConfig, or a Qwen2Config for a model
// of that type (which has q, k, v biases without saying so).
func (m *Model) configJSON() []byte {
	a := m.Arch
	typ, arch := "llama", "LlamaForCausalLM"
	if m.ModelType == "qwen2" {
		typ, arch = "qwen2", "Qwen2ForCausalLM"
	}
	var scaling any
	if sc := m.RopeScaling; sc != nil {
		scaling = map[string]any{"rope_type": "llama3", "factor": sc.Factor, "low_freq_factor": sc.LowFreqFactor,
			"high_freq_factor": sc.HighFreqFactor, "original_max_position_embeddings": sc.OrigMaxPos}
	}
	cfg, _ := json.MarshalIndent(map[string]any{ // maps of plain values always marshal
		"architectures": []string{arch}, "model_type": typ, "hidden_size": a.HiddenSize,
		"intermediate_size": a.FFNSize, "num_hidden_layers": a.Layers, "num_attention_heads": a.Heads,
		"num_key_value_heads": a.KVHeads, "head_dim": m.HeadDim, "vocab_size": a.VocabSize,
		"max_position_embeddings": a.MaxSeqLen, "rms_norm_eps": m.NormEps, "rope_theta": m.RopeTheta,
		"hidden_act": "silu", "tie_word_embeddings": m.Tied, "torch_dtype": "float32",
		"attention_bias": len(m.Layers) > 0 && m.Layers[0].BO != nil, "mlp_bias": false, "bos_token_id": m.EOS, "eos_token_id": m.EOS,
		"rope_scaling": scaling,
	}, "", "  ")
	return cfg
}
