package power

import (
	"bytes"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// foreignStream writes a stream as another sampler might: t in the given
// type, device as a dictionary, no source column, power_w as float32, an
// int32 throttle, and the interval under meta key k.
func foreignStream(t testing.TB, tType arrow.DataType, k, v string) []byte {
	t.Helper()
	md := arrow.NewMetadata([]string{k}, []string{v})
	sc := arrow.NewSchema([]arrow.Field{
		{Name: ColT, Type: tType},
		{Name: ColDevice, Type: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int16, ValueType: arrow.BinaryTypes.String}},
		{Name: ColPowerW, Type: arrow.PrimitiveTypes.Float32, Nullable: true},
		{Name: ColEnergyJ, Type: arrow.Null, Nullable: true},
		{Name: ColThrottle, Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	}, &md)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	for i := 0; i < 6; i++ {
		switch tb := b.Field(0).(type) {
		case *array.TimestampBuilder:
			tb.Append(arrow.Timestamp(1000 + i))
		case *array.Int64Builder:
			tb.Append(int64(1000 + i))
		}
		dev := []string{"GPU-x", "package-0"}[i%2]
		if err := b.Field(1).(*array.BinaryDictionaryBuilder).AppendString(dev); err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			b.Field(2).AppendNull()
		} else {
			b.Field(2).(*array.Float32Builder).Append(float32(10 * i))
		}
		b.Field(3).AppendNull()
		b.Field(4).(*array.Int32Builder).Append(4)
	}
	rec := b.NewRecord()
	defer rec.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(sc))
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return buf.Bytes()
}

// foreignSeeds are fuzz seeds in other samplers' forms: dictionary devices,
// no source column, float32, null and int32 columns, t in ms or int64.
func foreignSeeds(t testing.TB) map[string][]byte {
	return map[string][]byte{
		"foreign-ms":    foreignStream(t, &arrow.TimestampType{Unit: arrow.Millisecond}, "interval_ms", "50"),
		"foreign-int64": foreignStream(t, arrow.PrimitiveTypes.Int64, "interval", "50ms"),
	}
}

// Streams of other samplers in the long format: timestamps of any unit or
// int64 ns, no source column, dictionary-coded devices, float32 and null
// readings, a narrower throttle, the interval under another key.
func TestForeignStreams(t *testing.T) {
	for _, c := range []struct {
		name   string
		tType  arrow.DataType
		k, v   string
		mul    int64
		wantIv int64
	}{
		{"s", &arrow.TimestampType{Unit: arrow.Second}, "interval_s", "0.05", 1e9, 50e6},
		{"ms", &arrow.TimestampType{Unit: arrow.Millisecond}, "interval_ms", "50", 1e6, 50e6},
		{"us", &arrow.TimestampType{Unit: arrow.Microsecond}, "interval", "50ms", 1e3, 50e6},
		{"int64", arrow.PrimitiveTypes.Int64, "interval_ns", "50000000", 1, 50e6},
		{"unreadable interval", arrow.PrimitiveTypes.Int64, "interval_ms", "fast", 1, 0},
	} {
		r, err := NewReader(bytes.NewReader(foreignStream(t, c.tType, c.k, c.v)), "f.arrows")
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if r.Meta().IntervalNS != c.wantIv {
			t.Errorf("%s: interval %d, want %d", c.name, r.Meta().IntervalNS, c.wantIv)
		}
		if !r.Next() {
			t.Fatalf("%s: no batch: %v", c.name, r.Err())
		}
		b := r.Batch()
		if b.N != 6 || b.T[5] != (1005)*c.mul || b.PowerW[4] != 40 || b.PowerOK[2] || !b.PowerOK[3] || b.EnergyOK[0] || b.Throttle[1] != 4 {
			t.Errorf("%s: batch t %v power %v %v energy ok %v throttle %v", c.name, b.T, b.PowerW, b.PowerOK, b.EnergyOK, b.Throttle)
		}
		devs := r.Devices()
		if len(devs) != 2 || devs[b.Dev[0]].Device != "GPU-x" || devs[b.Dev[0]].Source != "nvml" || devs[b.Dev[1]].Source != "rapl" || devs[b.Dev[1]].Scope != "cpu_package" {
			t.Errorf("%s: devices %+v, rows %v", c.name, devs, b.Dev)
		}
		if r.Next() || r.Err() != nil {
			t.Errorf("%s: a second batch, or %v", c.name, r.Err())
		}
		r.Close()
	}
}
