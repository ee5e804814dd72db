// Command standin plays an OpenAI-compatible server for the serving tests of
// llem-exec, taking llem-serve's command line (only --listen and
// --served-model-name matter). $LLEM_STANDIN says how it behaves:
//
//	ok          serves /health, /v1/models and streaming /v1/completions
//	unhealthy   serves, but /health answers 503 for ever
//	exit        writes a line to stderr and exits 3 before listening
//	die         exits 1 when the first completion request arrives
//	ignoreterm  serves like ok, ignores SIGTERM, and leaves a child in its
//	            process group (killed with it)
//	child       (the child) sleeps until killed
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	mode := os.Getenv("LLEM_STANDIN")
	if mode == "child" {
		select {}
	}
	listen, model := "127.0.0.1:8000", "standin"
	for i := 1; i+1 < len(os.Args); i++ {
		switch os.Args[i] {
		case "--listen":
			listen = os.Args[i+1]
		case "--served-model-name":
			model = os.Args[i+1]
		}
	}
	if mode == "exit" {
		fmt.Fprintln(os.Stderr, "standin: cannot load the model: out of cheese")
		os.Exit(3)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	if mode == "ignoreterm" {
		signal.Ignore(syscall.SIGTERM)
		child := exec.Command(os.Args[0])
		child.Env = append(os.Environ(), "LLEM_STANDIN=child")
		if err := child.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "standin: child:", err)
			os.Exit(1)
		}
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "standin:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "standin: %s serving %s on %s\n", mode, model, ln.Addr())
	go func() { _ = http.Serve(ln, handler(mode, model)) }()
	<-term
	fmt.Fprintln(os.Stderr, "standin: stopping")
}

func handler(mode, model string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		if mode == "unhealthy" {
			http.Error(w, "still loading", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": []map[string]any{{"id": model, "object": "model"}}})
	})
	mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) {
		if mode == "die" {
			fmt.Fprintln(os.Stderr, "standin: dying under traffic")
			os.Exit(1)
		}
		var req struct {
			MaxTokens int `json:"max_tokens"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		stream(w, max(req.MaxTokens, 1))
	})
	return mux
}

// stream answers with n one-token chunks, the usage and [DONE].
func stream(w http.ResponseWriter, n int) {
	w.Header().Set("Content-Type", "text/event-stream")
	fl, _ := w.(http.Flusher)
	for i := range n {
		fmt.Fprintf(w, "data: {\"id\":\"c\",\"object\":\"text_completion\",\"choices\":[{\"index\":0,\"text\":\"t%d\",\"finish_reason\":null}]}\n\n", i)
		if fl != nil {
			fl.Flush()
		}
		time.Sleep(time.Millisecond)
	}
	fmt.Fprintf(w, "data: {\"id\":\"c\",\"object\":\"text_completion\",\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n", n, n+4)
	fmt.Fprint(w, "data: [DONE]\n\n")
}
