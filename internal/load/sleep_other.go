//go:build !linux

package load

import "time"

// preciseSleep falls back to the runtime's sleep where nanosleep is not
// wired up; sends are then up to a timer tick late.
func preciseSleep(d time.Duration) { time.Sleep(d) }
