package gpu

import (
	"reflect"
	"testing"
)

func TestSelect(t *testing.T) {
	uuids := []string{"GPU-aaaa1111-0000", "GPU-bbbb2222-0000", "GPU-cccc3333-0000", "GPU-dddd4444-0000"}
	s := func(v string) *string { return &v }
	for _, c := range []struct {
		cvd  *string
		want []string
		out  []int
		bad  bool
	}{
		{nil, nil, []int{0, 1, 2, 3}, false},
		{s("2,0"), nil, []int{2, 0}, false},
		{s("GPU-cccc3333-0000,GPU-aaaa"), []string{"1"}, []int{0}, false}, // cuda:1 is the second visible
		{s("3,9,1"), nil, []int{3}, false},                                // CUDA stops at the first invalid entry
		{s(""), nil, []int{}, false},
		{nil, []string{"GPU-bbbb2222-0000", "3", "3"}, []int{1, 3}, false},
		{s("1"), []string{"GPU-aaaa1111-0000"}, nil, true}, // not visible
		{nil, []string{"7"}, nil, true},
	} {
		got, err := Select(uuids, c.cvd, c.want)
		if (err != nil) != c.bad || (!c.bad && !reflect.DeepEqual(got, c.out)) {
			t.Errorf("cvd %v want %v: got %v %v", c.cvd, c.want, got, err)
		}
	}
}

// CUDA_VISIBLE_DEVICES=MIG-… names a MIG instance: it must not become
// "GPU-MIG-…" (which names nothing, so GPU runs were refused).
func TestSelectMIG(t *testing.T) {
	const mig = "MIG-4e3a8e1c-2b1f-5a4d-9c1e-7f0a1b2c3d4e"
	uuids := []string{"GPU-aaaa1111-0000", "GPU-bbbb2222-0000", mig}
	cvd := mig
	got, err := Select(uuids, &cvd, nil)
	if err != nil || !reflect.DeepEqual(got, []int{2}) {
		t.Fatalf("MIG in CUDA_VISIBLE_DEVICES: %v %v", got, err)
	}
	got, err = Select(uuids, nil, []string{mig})
	if err != nil || !reflect.DeepEqual(got, []int{2}) {
		t.Fatalf("MIG in --gpus: %v %v", got, err)
	}
	if n := MIGNames(&cvd, []string{mig, "GPU-aaaa", "MIG-x"}); !reflect.DeepEqual(n, []string{mig, "MIG-x"}) {
		t.Fatalf("MIGNames %v", n)
	}
}
