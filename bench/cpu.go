package bench

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuUse is how busy the machine's CPUs were over a window, split into
// this process and everything else. Latency on a shared machine means
// little without it: another program's build or test run takes the same
// cores from the server and its clients.
type cpuUse struct {
	ok    bool    // the figures could be read (Linux /proc)
	self  float64 // CPUs' worth used by this process
	other float64 // CPUs' worth used by every other process and the kernel
}

// cpuMark is a reading to take a window's difference from.
type cpuMark struct {
	at        time.Time
	busyTicks int64 // the machine's non-idle clock ticks
	selfNS    int64 // this process's user + system time
	ok        bool
}

// cpuLine says how busy the machine was over the window, and with what:
// this process's share is its getrusage time ÷ wall time ÷ CPUs.
func (p *printer) cpuLine(c cpuUse) {
	if !c.ok {
		return
	}
	p.printf("   CPU over the window: this process %.2f (%.0f%% of %d CPUs), other processes %.2f%s\n",
		c.self, 100*c.self/float64(runtime.NumCPU()), runtime.NumCPU(), c.other, loadAverage("end"))
}

// userHZ is the unit of /proc/stat; 100 on every Linux this runs on.
const userHZ = 100

func readCPUMark() cpuMark {
	m := cpuMark{at: time.Now()}
	busy, ok := machineBusyTicks()
	var ru syscall.Rusage
	if !ok || syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return m
	}
	m.busyTicks, m.ok = busy, true
	m.selfNS = ru.Utime.Nano() + ru.Stime.Nano()
	return m
}

func (m cpuMark) since() cpuUse {
	now := readCPUMark()
	wall := now.at.Sub(m.at).Seconds()
	if !m.ok || !now.ok || wall <= 0 {
		return cpuUse{}
	}
	busy := float64(now.busyTicks-m.busyTicks) / userHZ
	self := float64(now.selfNS-m.selfNS) / 1e9
	return cpuUse{ok: true, self: self / wall, other: max(busy-self, 0) / wall}
}

// machineBusyTicks sums the first line of /proc/stat less idle and iowait
// (and less guest time, which user time already holds).
func machineBusyTicks() (int64, bool) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	fields := strings.Fields(line)
	if err != nil || len(fields) < 8 || fields[0] != "cpu" {
		return 0, false
	}
	var busy int64
	for i, f := range fields[1:min(len(fields), 9)] { // user nice system idle iowait irq softirq steal
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, false
		}
		if i != 3 && i != 4 {
			busy += v
		}
	}
	return busy, true
}
