package bench

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Usage is what one measured section cost the process.
type Usage struct {
	Wall     time.Duration
	CPU      time.Duration // user + system, every thread of the process
	PeakHeap uint64        // bytes of live and unswept heap objects, sampled
	PeakRSS  uint64        // VmHWM: bytes, since the last ResetPeakRSS
}

// heapMetric is the heap in use by objects, reachable or not yet swept.
const heapMetric = "/memory/classes/heap/objects:bytes"

// heapSampleEvery bounds how long a heap peak can go unseen; a poll allocates for far longer.
const heapSampleEvery = 2 * time.Millisecond

// Measure runs fn and returns what it cost. The peak RSS is the process's since the last
// ResetPeakRSS (the kernel keeps one high-water mark per process).
func Measure(fn func() error) (Usage, error) {
	stop := sampleHeap()
	cpu0 := cpuTime()
	start := time.Now()
	err := fn()
	u := Usage{Wall: time.Since(start), CPU: cpuTime() - cpu0}
	u.PeakHeap = stop()
	u.PeakRSS = peakRSS()
	return u, err
}

func sampleHeap() (stop func() uint64) {
	var (
		mu   sync.Mutex
		peak uint64
		done = make(chan struct{})
		wg   sync.WaitGroup
	)
	sample := []metrics.Sample{{Name: heapMetric}}
	read := func() {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return
		}
		mu.Lock()
		peak = max(peak, sample[0].Value.Uint64())
		mu.Unlock()
	}
	read()
	wg.Go(func() {
		t := time.NewTicker(heapSampleEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				read()
			}
		}
	})
	return func() uint64 {
		close(done)
		wg.Wait()
		read()
		return peak
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSS reads VmHWM from /proc/self/status (0 where there is none).
func peakRSS() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}

// ResetPeakRSS returns freed memory to the system and resets VmHWM to the current RSS (writing
// 5 to /proc/self/clear_refs, Linux 4.0+), so the next peak belongs to what runs next.
func ResetPeakRSS() error {
	runtime.GC()
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return fmt.Errorf("reset peak RSS: %w", err)
	}
	return nil
}

// MiB formats bytes as mebibytes.
func MiB(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
