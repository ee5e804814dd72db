package report

import (
	"context"
	"io"
)

func (rp *Report) WriteHTML(ctx context.Context, w, log io.Writer) error { return nil }
