package study

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// ordered runs work on chunks 0..n-1 in parallel and hands the results to
// consume in chunk order, with at most a few chunks per worker in flight (so
// memory stays bounded). When consume fails, the remaining chunks are
// cancelled (work sees stop) and the error is returned.
func ordered[R any](n int, work func(worker, k int, stop *atomic.Bool) R, consume func(k int, r R) error) error {
	workers := runtime.GOMAXPROCS(0)
	if workers > n {
		workers = n
	}
	if workers <= 1 {
		var stop atomic.Bool
		for k := 0; k < n; k++ {
			if err := consume(k, work(0, k, &stop)); err != nil {
				return err
			}
		}
		return nil
	}
	window := workers * 4
	slots := make([]chan R, window)
	for i := range slots {
		slots[i] = make(chan R, 1)
	}
	sem := make(chan struct{}, window)
	jobs := make(chan int)
	var stop atomic.Bool
	go func() {
		defer close(jobs)
		for k := 0; k < n; k++ {
			sem <- struct{}{}
			jobs <- k
		}
	}()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for k := range jobs {
				slots[k%window] <- work(w, k, &stop)
			}
		}(w)
	}
	var firstErr error
	for k := 0; k < n; k++ {
		r := <-slots[k%window]
		<-sem
		if firstErr == nil {
			if err := consume(k, r); err != nil {
				firstErr = err
				stop.Store(true)
			}
		}
	}
	wg.Wait()
	return firstErr
}
