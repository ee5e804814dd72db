package docker

import (
	"strings"
	"testing"

	flags "github.com/jessevdk/go-flags"
)

func TestFlags(t *testing.T) {
	var f Flags
	if _, err := flags.ParseArgs(&f, []string{"--image", "vllm=my/vllm:1", "--image", "pytorch = my/pt:2", "--model-cache", "/data/hf", "--shm-size", "16g", "--container-memory", "512m", "--no-pull", "--ipc-host"}); err != nil {
		t.Fatal(err)
	}
	o, err := f.Options("/c")
	if err != nil {
		t.Fatal(err)
	}
	if o.Images["vllm"] != "my/vllm:1" || o.Images["pytorch"] != "my/pt:2" || o.ModelCache != "/data/hf" || o.ShmSize != 16<<30 || o.MemoryLimit != 512<<20 || !o.NoPull || o.CacheDir != "/c" || !o.IPCHost {
		t.Fatalf("options %+v", o)
	}
	var d Flags
	if _, err := flags.ParseArgs(&d, nil); err != nil {
		t.Fatal(err)
	}
	if o, err := d.Options(""); err != nil || o.ShmSize != DefaultShmSize || o.Images != nil {
		t.Fatalf("defaults %+v %v", o, err)
	}
	for _, bad := range [][]string{{"--image", "vllm"}, {"--image", "=x"}, {"--image", "llamacpp=x"}, {"--image", "pytorh=x"}, {"--shm-size", "lots"}, {"--container-memory=-1"}} {
		var b Flags
		if _, err := flags.ParseArgs(&b, bad); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Options(""); err == nil || !strings.Contains(err.Error(), strings.SplitN(bad[0], "=", 2)[0]) {
			t.Errorf("%v: error %v should name the flag", bad, err)
		}
	}
}

func TestImageResolution(t *testing.T) {
	r, err := New(Options{Images: map[string]string{"vllm": "flag/vllm:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	e := testExperiment("vllm").Experiment
	e.Runner.Image = "study/vllm:2"
	if got := r.Image(e); got != "flag/vllm:1" {
		t.Errorf("flag must win: %s", got)
	}
	e.Backend = "pytorch"
	e.Runner.Image = "study/pt:3"
	if got := r.Image(e); got != "study/pt:3" {
		t.Errorf("study runners: image next: %s", got)
	}
	e.Runner.Image = ""
	if got := r.Image(e); got != DefaultImages["pytorch"] {
		t.Errorf("default last: %s", got)
	}
}
