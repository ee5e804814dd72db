package load

import (
	"syscall"
	"time"
)

// preciseSleep sleeps d with the kernel's high-resolution timer. The Go
// runtime's timers wake through epoll, whose timeout is in whole
// milliseconds, so a send timed with them is up to a millisecond late;
// nanosleep wakes within tens of microseconds. It blocks its thread and
// cannot be interrupted, so callers use it only for the last stretch.
func preciseSleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}
