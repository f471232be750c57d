import Foundation
import LeakAnalysis

/// SARIF 2.1.0 for code scanning: one result per leak group (definitely, indirectly, possibly
/// lost), per growing site and per finding, with a rule per kind (`SARIFRules`), a partial
/// fingerprint from the allocation stack's symbols (stable across runs and load addresses), the
/// program's innermost source line as the location (relative to `--source-root` under
/// `%SRCROOT%`), and the whole stack. Within GitHub code scanning's limits: one run, at most
/// 5,000 results (the most severe and largest kept), one location per result, 100 frames per stack.
enum SARIFLog {
    static let maxResults = 5_000
    static let maxFrames = 100
    static let fingerprintKey = "leakvisorStack/v1"

    static func render(_ report: LeakReport, sourceRoot: String?) throws -> Data {
        let locator = SARIFLocator(sourceRoot: sourceRoot)
        var results: [(rank: (Int, UInt64), result: SARIF.Result)] = []
        for process in report.processes {
            let who = "\(process.command ?? "unknown process") (pid \(process.pid.map(String.init) ?? "?"))"
            for group in process.groups {
                guard let reachability = group.reachability, let ruleIndex = SARIFRules.index(of: reachability) else { continue }
                let total = group.bytes.addingSaturated(group.indirectBytes)
                var text = "\(reachability.rawValue.prefix(1).uppercased() + reachability.rawValue.dropFirst()): \(total) byte(s)"
                if group.indirectBytes > 0 { text += " (\(group.bytes) direct, \(group.indirectBytes) indirect)" }
                text += " in \(group.blocks) object(s) allocated by \(group.function.rawValue)" + where_(group.frames) + " in \(who)"
                results.append(((ruleIndex, total), result(ruleIndex, text, group.frames, locator, process,
                                                           blocks: group.blocks, bytes: group.bytes, indirect: group.indirectBytes,
                                                           allocator: group.function.rawValue)))
            }
            for growth in process.growth {
                let text = "Growing while referenced: \(growth.firstBytes) -> \(growth.lastBytes) byte(s) (\(growth.firstBlocks) -> "
                    + "\(growth.lastBlocks) object(s)) over \(growth.scans) scans, allocated by \(growth.function.rawValue)"
                    + where_(growth.frames) + " in \(who)"
                results.append(((SARIFRules.growthIndex, growth.lastBytes), result(SARIFRules.growthIndex, text, growth.frames, locator,
                                                                                  process, blocks: growth.lastBlocks, bytes: growth.lastBytes,
                                                                                  indirect: nil, allocator: growth.function.rawValue)))
            }
            for finding in process.findings {
                let index = SARIFRules.index(of: finding.kind)
                let text = "\(finding.kind.rawValue.prefix(1).uppercased() + finding.kind.rawValue.dropFirst()) of 0x"
                    + String(finding.address, radix: 16) + " by \(finding.releasedBy.rawValue)" + where_(finding.frames) + " in \(who)"
                results.append(((index, finding.size ?? 0), result(index, text, finding.frames, locator, process, blocks: nil,
                                                                   bytes: finding.size, indirect: nil, allocator: finding.releasedBy.rawValue)))
            }
        }
        let severity = ["error": 0, "warning": 1, "note": 2]
        results.sort { a, b in
            let (sa, sb) = (severity[a.result.level] ?? 3, severity[b.result.level] ?? 3)
            return sa != sb ? sa < sb : a.rank.1 > b.rank.1
        }
        var notifications: [SARIF.Notification] = report.notes.map { SARIF.Notification(message: SARIF.Message(text: $0), level: "note") }
        if results.count > maxResults {
            notifications.append(SARIF.Notification(message: SARIF.Message(
                text: "\(results.count) results, only the \(maxResults) most severe and largest are listed (code scanning's display limit)"),
                level: "warning"))
        }
        var baseIds: [String: SARIF.ArtifactLocation]?
        if let root = locator.rootURI { baseIds = ["%SRCROOT%": SARIF.ArtifactLocation(uri: root, uriBaseId: nil)] }
        let run = SARIF.Run(tool: SARIF.Tool(driver: SARIF.Driver(informationUri: nil, semanticVersion: nil, rules: SARIFRules.sarifRules())),
                            originalUriBaseIds: baseIds,
                            invocations: [SARIF.Invocation(executionSuccessful: true,
                                                           toolExecutionNotifications: notifications.isEmpty ? nil : notifications)],
                            results: results.prefix(maxResults).map(\.result),
                            properties: nil)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(SARIF.Log(runs: [run]))
    }

    static func result(_ ruleIndex: Int, _ text: String, _ frames: [ReportFrame], _ locator: SARIFLocator, _ process: ProcessReport,
                       blocks: Int?, bytes: UInt64?, indirect: UInt64?, allocator: String) -> SARIF.Result {
        let rule = SARIFRules.all[ruleIndex]
        let primary = FrameNaming.blameFrame(frames).map { locator.location($0, fallback: process.executable) }
            ?? locator.location(ReportFrame(pc: 0, module: process.executable), fallback: process.executable)
        let stack = SARIF.Stack(message: nil, frames: frames.prefix(maxFrames).map {
            SARIF.StackFrame(location: locator.location($0, fallback: nil))
        })
        return SARIF.Result(ruleId: rule.id, ruleIndex: ruleIndex, level: rule.level, message: SARIF.Message(text: text),
                            locations: [primary], partialFingerprints: [fingerprintKey: fingerprint(rule.id, allocator, frames)],
                            stacks: frames.isEmpty ? nil : [stack],
                            properties: SARIF.ResultProperties(process: process.command ?? "unknown", pid: process.pid, blocks: blocks,
                                                               bytes: bytes, indirectBytes: indirect, allocator: allocator))
    }

    /// The rule, the allocator and the stack's symbol names (never addresses): the same leak gets
    /// the same fingerprint in every run, whatever the load addresses.
    static func fingerprint(_ ruleId: String, _ allocator: String, _ frames: [ReportFrame]) -> String {
        var hash = StableHash()
        hash.combine(ruleId)
        hash.combine(allocator)
        for frame in frames.prefix(maxFrames) { hash.combine(FrameNaming.stableName(frame)) }
        return hash.hex
    }

    /// " from make at leak.c:5" (the blamed frame), or "".
    static func where_(_ frames: [ReportFrame]) -> String {
        guard let frame = FrameNaming.blameFrame(frames) else { return "" }
        var text = " from \(FrameNaming.name(frame))"
        if let file = frame.file { text += " at \(FrameNaming.basename(file))" + (frame.line.map { ":\($0)" } ?? "") }
        return text
    }
}
