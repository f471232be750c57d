@testable import AllocationTracing
@testable import Benchmarks
import Testing

/// What `bench tracking` reads from the guest's console and how it counts stack walks.
@Suite struct BenchmarkParsingTests {
    @Test func redisBenchmarkThroughputInEachPhase() {
        // redis-benchmark -q, its progress lines split at \r, filtered to the results (three phases).
        let text = """
            LV-BENCH-REDIS
            SET: 508.13 requests per second, p50=6.471 msec
            GET: 517.06 requests per second, p50=6.311 msec
            LV-BENCH-NEXT 1
            SET: rps=0.0 (overall: nan) avg_msec=nan (overall: nan)
            SET: 497.51 requests per second, p50=6.607 msec
            GET: 501.00 requests per second, p50=6.511 msec
            SET: 569.15 requests per second, p50=5.823 msec
            GET: 568.18 requests per second, p50=5.799 msec
            OK
            """
        let runs = RedisBenchmarkRun.throughput(text)
        #expect(runs["SET"] == [508.13, 497.51, 569.15])
        #expect(runs["GET"] == [517.06, 501.00, 568.18])
        #expect(RedisBenchmarkRun.throughput("SET: fast requests per second\nGET:\n").isEmpty)
    }

    /// A peer's time is the program's own result line, read from its stdout (stderr, where the
    /// tools report, is ignored); no result line or no such program gives nothing.
    @Test func hostPeerTimesComeFromTheProgramsResultLine() {
        let shell = "/bin/sh"
        #expect(HostPeersBenchmark.elapsedNanoseconds(
            [shell, "-c", "echo 'lv-prog lv-bench-malloc result pairs=1 elapsed_ns=4242'; echo noise >&2"], program: "lv-bench-malloc") == 4242)
        #expect(HostPeersBenchmark.elapsedNanoseconds([shell, "-c", "echo nothing"], program: "lv-bench-malloc") == nil)
        #expect(HostPeersBenchmark.elapsedNanoseconds(["/nonexistent/lv-bench"], program: "lv-bench-malloc") == nil)
        #expect(HostPeersBenchmark.peers().map(\.name) == ["native", "LeakSanitizer", "heaptrack", "valgrind"])
    }

    @Test func stackWalkLineBetweenTwoReadings() {
        var start = TrackerCounters(), end = TrackerCounters()
        start.stackWalks = 10
        start.stackWalkNanoseconds = 1_000_000
        end.stackWalks = 110
        end.stackWalkNanoseconds = 3_500_000
        end.stackFramesByCFI = 750
        end.stackFramesByFramePointer = 50
        let line = TrackingBenchmark.stackWalkLine(end, since: start)
        #expect(line.contains("stack walks: 100, 25.00 us each"), "\(line)")
        #expect(line.contains("8.0 frames past the caller each (94% by CFI"), "\(line)")
        #expect(TrackingBenchmark.stackWalkLine(start, since: start) == "  stack walks: none")
        end.entries = 3
        end.returns = 3
        end.releases = 2
        end.nestedEntries = 1
        #expect(end.trappedEvents == 9)
    }
}
