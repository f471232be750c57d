import Foundation
import Testing

/// A real service on jemalloc, tracked: Debian's redis-server (stripped, no frame pointers,
/// linked with libjemalloc) in the restored guest, driven by redis-benchmark over a Unix socket,
/// with one client that never closes its connection, then shut down. Its outstanding allocations
/// come through jemalloc, with stacks found through CFI many frames deep into redis's own
/// functions (their names from redis's dynamic symbol table: Debian links it with -rdynamic).
@Suite(.enabled(if: LeakVisorProcess.executable != nil && LeakVisorProcess.imageBuilt
                    && FileManager.default.isExecutableFile(atPath: "/usr/bin/redis-server")
                    && FileManager.default.isExecutableFile(atPath: "/usr/bin/redis-benchmark"),
                "needs .build/debug/leakvisor, the default guest image and Debian's redis-server and redis-tools (scripts/setup.sh)"))
struct RedisTrackingTests {
    @Test func redisAllocationsComeThroughJemallocWithDeepStacks() throws {
        let report = FileManager.default.temporaryDirectory.appendingPathComponent("lv-redis-\(getpid()).json")
        defer { try? FileManager.default.removeItem(at: report) }
        var arguments = ["run", "--track", "user", "--stack-depth", "24", "--timeout", "2400", "--report", report.path]
        for tool in ["redis-server", "redis-benchmark", "redis-cli"] { arguments += ["--add", "/usr/bin/\(tool):/usr/bin/\(tool)"] }
        let socket = "/tmp/redis/redis.sock"
        let script = """
            mkdir -p /tmp/redis; cd /tmp/redis
            redis-server --port 0 --unixsocket \(socket) --save '' --appendonly no --logfile /tmp/redis/log &
            i=0; while [ ! -S \(socket) ] && [ $i -lt 300 ]; do sleep 1; i=$((i+1)); done
            redis-benchmark -s \(socket) -n 200 -c 4 -t set,get,lpush -q
            redis-cli -s \(socket) subscribe lv-never-closed > /dev/null &
            sleep 2
            redis-cli -s \(socket) set lv-key lv-value
            redis-cli -s \(socket) shutdown nosave
            wait
            echo LV-REDIS-DONE
            """
        let result = try LeakVisorProcess.run(arguments + ["--", "sh", "-c", script], long: true)
        #expect(result.status == 0, "stderr: \(result.stderr.suffix(3000))")
        #expect(result.stdout.contains("LV-REDIS-DONE"), "\(result.stdout.suffix(3000))")
        #expect(result.stdout.contains("SET: ") && result.stdout.contains("LPUSH: "), "redis-benchmark's figures: \(result.stdout.suffix(3000))")

        let root = try JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [String: Any] ?? [:]
        let processes = root["processes"] as? [[String: Any]] ?? []
        let server = try #require(processes.first { $0["executable"] as? String == "/usr/bin/redis-server" },
                                  "redis-server is not in the report: \(processes.compactMap { $0["executable"] as? String })")
        let groups = server["groups"] as? [[String: Any]] ?? []
        let blocks = groups.reduce(0) { $0 + ($1["blocks"] as? Int ?? 0) }
        #expect(blocks > 1000, "redis-server's outstanding blocks: \(blocks)")
        // Every allocation came through jemalloc's entry points (glibc's malloc is never called).
        let modules = Set(groups.compactMap { (($0["frames"] as? [[String: Any]])?.first?["module"] as? String).map(Self.basename) })
        #expect(modules == ["libjemalloc.so.2"], "allocators: \(modules)")
        // Stacks through CFI into redis's own functions: a command's allocation goes down through
        // call and processCommand to aeMain and main, at least 8 frames inside redis-server.
        func stack(_ group: [String: Any]) -> [(function: String?, module: String)] {
            (group["frames"] as? [[String: Any]] ?? []).map { ($0["function"] as? String, Self.basename($0["module"] as? String ?? "")) }
        }
        let commands = groups.map(stack).filter { frames in
            let names = frames.compactMap(\.function)
            return names.contains("processCommand") && names.contains("call") && names.contains("aeMain") && names.contains("main")
        }
        #expect(!commands.isEmpty, "no allocation from a command: \(groups.prefix(5).map(stack))")
        let deepest = commands.map { $0.filter { $0.module == "redis-server" }.count }.max() ?? 0
        #expect(deepest >= 8, "frames inside redis-server: \(deepest)")
        // Client structures (zmalloc'd by createClient for a connection accepted on the socket) still
        // held at shutdown: the client that never closed its connection and the one that sent shutdown.
        let clients = groups.filter { group in
            let names = stack(group).map { $0.function ?? "?" }
            return names.count > 2 && names[1] == "zmalloc" && names[2] == "createClient" && names.contains("acceptUnixHandler")
        }.reduce(0) { $0 + ($1["blocks"] as? Int ?? 0) }
        #expect(clients >= 2, "accepted clients' structures outstanding: \(clients)")
        // redis-benchmark (also on jemalloc) is tracked too.
        #expect(processes.contains { $0["executable"] as? String == "/usr/bin/redis-benchmark" })
        #expect(result.stderr.contains("through CFI"), "the closing line on stacks: \(result.stderr.suffix(2000))")
    }

    static func basename(_ path: String) -> String { String(path.split(separator: "/").last ?? "") }
}
