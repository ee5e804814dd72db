package aggregate

import (
	"encoding/json"
	"io"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"

	"github.com/llem/llem/internal/atomicfile"
	"github.com/llem/llem/internal/record"
)

// Provenance is written into the Parquet files' key-value metadata.
type Provenance struct {
	Tool    string   `json:"tool"`
	Version string   `json:"version"`
	Inputs  []string `json:"inputs"`
	Options Options  `json:"options"`
	Created string   `json:"created"` // RFC 3339 UTC
}

func flagCodes(fl []record.Flag) string {
	var c []string
	seen := map[string]bool{}
	for _, f := range fl {
		if !seen[f.Code] {
			seen[f.Code] = true
			c = append(c, f.Code)
		}
	}
	return strings.Join(c, ",")
}

// EnergyTable builds the energy table: one row per run, identity columns,
// then one nullable float64 column per metric (MetricNames order).
func EnergyTable(es []*record.Energy) arrow.Record {
	str := func(n string) arrow.Field { return arrow.Field{Name: n, Type: arrow.BinaryTypes.String} }
	fields := []arrow.Field{str("study"), str("study_hash"), str("id"), str("run_id"),
		{Name: "seq", Type: arrow.PrimitiveTypes.Int64}, {Name: "cycle", Type: arrow.PrimitiveTypes.Int64}, {Name: "n_cycles", Type: arrow.PrimitiveTypes.Int64},
		str("backend"), str("model"), str("status"), {Name: "error_type", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "error_message", Type: arrow.BinaryTypes.String, Nullable: true},
		str("host"), str("basis"), str("total_scopes"), {Name: "estimate", Type: arrow.FixedWidthTypes.Boolean},
		str("flops_method"), str("flags"), str("config"), {Name: "attribution", Type: arrow.BinaryTypes.String, Nullable: true}}
	nFixed := len(fields)
	names := namesOf(es)
	for _, m := range names {
		fields = append(fields, arrow.Field{Name: m, Type: arrow.PrimitiveTypes.Float64, Nullable: true})
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, arrow.NewSchema(fields, nil))
	defer b.Release()
	for _, e := range es {
		s := func(i int, v string) { b.Field(i).(*array.StringBuilder).Append(v) }
		i64 := func(i int, v int) { b.Field(i).(*array.Int64Builder).Append(int64(v)) }
		s(0, e.Study)
		s(1, e.StudyHash)
		s(2, e.ID)
		s(3, e.RunID)
		i64(4, e.Seq)
		i64(5, e.Cycle)
		i64(6, e.NCycles)
		s(7, e.Backend)
		s(8, e.Model)
		s(9, e.Status)
		if e.Error != nil {
			s(10, e.Error.Type)
			s(11, e.Error.Message)
		} else {
			b.Field(10).AppendNull()
			b.Field(11).AppendNull()
		}
		s(12, e.Host)
		s(13, e.Basis)
		s(14, strings.Join(e.TotalScopes, ","))
		b.Field(15).(*array.BooleanBuilder).Append(e.Estimate)
		s(16, e.FLOPsMethod)
		s(17, flagCodes(e.Flags))
		s(18, string(e.Config))
		if e.Attribution != "" {
			s(19, e.Attribution)
		} else {
			b.Field(19).AppendNull()
		}
		for k, m := range names {
			fb := b.Field(nFixed + k).(*array.Float64Builder)
			if v := e.Metrics[m]; v != nil {
				fb.Append(*v)
			} else {
				fb.AppendNull()
			}
		}
	}
	return b.NewRecord()
}

// SummaryTable builds the summary table in long form: one row per config id
// and metric, with n, mean, std, the 95 % interval, min, max and CV.
func SummaryTable(ss []*record.Summary) arrow.Record {
	str := func(n string) arrow.Field { return arrow.Field{Name: n, Type: arrow.BinaryTypes.String} }
	f64 := func(n string) arrow.Field {
		return arrow.Field{Name: n, Type: arrow.PrimitiveTypes.Float64, Nullable: true}
	}
	fields := []arrow.Field{str("study"), str("study_hash"), str("id"), str("backend"), str("model"), str("basis"),
		{Name: "estimate", Type: arrow.FixedWidthTypes.Boolean}, {Name: "runs", Type: arrow.PrimitiveTypes.Int64},
		{Name: "runs_ok", Type: arrow.PrimitiveTypes.Int64}, str("flags"), str("metric"), {Name: "n", Type: arrow.PrimitiveTypes.Int64},
		f64("mean"), f64("std"), f64("ci95_lo"), f64("ci95_hi"), f64("ci95_half_width"), f64("min"), f64("max"), f64("cv")}
	b := array.NewRecordBuilder(memory.DefaultAllocator, arrow.NewSchema(fields, nil))
	defer b.Release()
	all := append(append([]string(nil), metricNames...), servingMetricNames...)
	for _, s := range ss {
		for _, m := range all {
			st := s.Metrics[m]
			if st == nil {
				continue
			}
			for i, v := range []string{s.Study, s.StudyHash, s.ID, s.Backend, s.Model, s.Basis} {
				b.Field(i).(*array.StringBuilder).Append(v)
			}
			b.Field(6).(*array.BooleanBuilder).Append(s.Estimate)
			b.Field(7).(*array.Int64Builder).Append(int64(s.Runs))
			b.Field(8).(*array.Int64Builder).Append(int64(s.RunsOK))
			b.Field(9).(*array.StringBuilder).Append(flagCodes(s.Flags))
			b.Field(10).(*array.StringBuilder).Append(m)
			b.Field(11).(*array.Int64Builder).Append(int64(st.N))
			for k, v := range []*float64{st.Mean, st.Std, st.CI95Lo, st.CI95Hi, st.CI95, st.Min, st.Max, st.CV} {
				fb := b.Field(12 + k).(*array.Float64Builder)
				if v != nil {
					fb.Append(*v)
				} else {
					fb.AppendNull()
				}
			}
		}
	}
	return b.NewRecord()
}

// WriteParquet writes rec to path (atomically), with the provenance and the
// table's kind in the file's key-value metadata.
func WriteParquet(path, kind string, rec arrow.Record, prov Provenance) error {
	defer rec.Release()
	return atomicfile.Write(path, func(out io.Writer) error {
		props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithCreatedBy(prov.Tool+" "+prov.Version))
		w, err := pqarrow.NewFileWriter(rec.Schema(), out, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
		if err != nil {
			return err
		}
		pj, _ := json.Marshal(prov)
		werr := w.Write(rec)
		for _, kv := range [][2]string{{"llem.kind", kind}, {"llem.provenance", string(pj)}} {
			if err := w.AppendKeyValueMetadata(kv[0], kv[1]); err != nil && werr == nil {
				werr = err
			}
		}
		if err := w.Close(); werr == nil {
			werr = err
		}
		return werr
	})
}
