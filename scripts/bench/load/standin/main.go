// Command standin is the fast stand-in server of the llem-load benchmark: an
// OpenAI-compatible /v1/models and streaming /v1/completions and
// /v1/chat/completions that answer at once with a short SSE stream (TOKENS
// chunks, a usage chunk, [DONE]), so the benchmark measures the load
// generator, not a model. It listens on 127.0.0.1 only and prints its
// address on stdout.
//
//	go run ./scripts/bench/load/standin [-addr 127.0.0.1:0] [-tokens 4]
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback)")
	tokens := flag.Int("tokens", 4, "token chunks per response")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ln.Addr().String())
	usage := []byte(`data: {"id":"x","object":"text_completion","model":"standin","choices":[],"usage":{"prompt_tokens":16,"completion_tokens":` +
		strconv.Itoa(*tokens) + `,"total_tokens":` + strconv.Itoa(16+*tokens) + "}}\n\n")
	tok := []byte(`data: {"id":"x","object":"text_completion","model":"standin","choices":[{"index":0,"text":" tok","finish_reason":null}]}` + "\n\n")
	last := []byte(`data: {"id":"x","object":"text_completion","model":"standin","choices":[{"index":0,"text":" end","finish_reason":"length"}]}` + "\n\n")
	done := []byte("data: [DONE]\n\n")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"object":"list","data":[{"id":"standin","object":"model","root":"standin","owned_by":"llem"}]}`)
	})
	stream := func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		for i := 0; i < *tokens; i++ {
			if i == *tokens-1 {
				w.Write(last)
			} else {
				w.Write(tok)
			}
			f.Flush()
		}
		w.Write(usage)
		w.Write(done)
	}
	mux.HandleFunc("POST /v1/completions", stream)
	mux.HandleFunc("POST /v1/chat/completions", stream)
	log.Fatal(http.Serve(ln, mux))
}
