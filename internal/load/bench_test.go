package load

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkSend is one streamed request of 4 tokens over loopback, the
// client's share of llem-load's per-request CPU (the server runs in the
// same process).
func BenchmarkSend(b *testing.B) {
	tok := []byte(`data: {"id":"x","object":"text_completion","model":"m","choices":[{"index":0,"text":" tok","finish_reason":null}]}` + "\n\n")
	srv := httptest.NewServer(http.HandlerFunc( // on 127.0.0.1
		func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "text/event-stream")
			for range 4 {
				w.Write(tok)
				w.(http.Flusher).Flush()
			}
			io.WriteString(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":16,\"completion_tokens\":4}}\n\ndata: [DONE]\n\n")
		}))
	defer srv.Close()
	c := testClient(srv, Clock(), false)
	payload, _ := c.Prepare(Spec{Prompt: "0123456789abcdef", MaxTokens: 4})
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if r := c.Send(context.Background(), 0, payload, 4); r.Status != "ok" {
			b.Fatal(r.Status, *r.Error)
		}
	}
}
