import Foundation
import LeakAnalysis
import ReportFormats
import Testing
#if canImport(FoundationXML)
import FoundationXML
#endif

/// valgrind XML (protocol 4) from real reports: well-formed, memcheck's element structure, one
/// Leak_* error per scanned group with its bytes, blocks and stack, findings as errors with
/// errorcounts, suppressions in suppcounts.
@Suite struct ValgrindXMLFormatTests {
    /// The elements of a document as (path, text) pairs, e.g. ("valgrindoutput/error/kind", "Leak_DefinitelyLost").
    final class Collector: NSObject, XMLParserDelegate {
        var path: [String] = []
        var text = ""
        var elements: [(path: String, text: String)] = []
        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            path.append(name)
            text = ""
        }
        func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }
        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            elements.append((path.joined(separator: "/"), text.trimmingCharacters(in: .whitespacesAndNewlines)))
            path.removeLast()
            text = ""
        }
    }

    static func parse(_ data: Data) throws -> [(path: String, text: String)] {
        let parser = XMLParser(data: data)
        let collector = Collector()
        parser.delegate = collector
        #expect(parser.parse(), "not well-formed: \(String(describing: parser.parserError))")
        return collector.elements
    }

    static func values(_ elements: [(path: String, text: String)], _ path: String) -> [String] {
        elements.filter { $0.path == path }.map(\.text)
    }

    @Test func leakTreeHasAnErrorPerScannedGroupWithValgrindsKinds() throws {
        let report = try ReportFixtures.leakTree()
        let elements = try Self.parse(try ReportRenderer.render(report, as: .valgrindXML))
        #expect(Self.values(elements, "valgrindoutput/protocolversion") == ["4"])
        #expect(Self.values(elements, "valgrindoutput/protocoltool") == ["memcheck"])
        #expect(Self.values(elements, "valgrindoutput/pid") == ["\(report.processes[0].pid!)"])
        let kinds = Self.values(elements, "valgrindoutput/error/kind")
        let groups = report.processes[0].groups
        #expect(kinds.count == groups.filter { $0.reachability != nil }.count)
        #expect(kinds.filter { $0 == "Leak_DefinitelyLost" }.count == groups.filter { $0.reachability == .directLeak }.count)
        #expect(kinds.filter { $0 == "Leak_IndirectlyLost" }.count == groups.filter { $0.reachability == .indirectLeak }.count)
        #expect(kinds.filter { $0 == "Leak_PossiblyLost" }.count == groups.filter { $0.reachability == .possiblyLost }.count)
        #expect(kinds.filter { $0 == "Leak_StillReachable" }.count == groups.filter { $0.reachability == .reachable }.count)
        // Leaked blocks add up to the summary's per-class blocks.
        let blocks = Self.values(elements, "valgrindoutput/error/xwhat/leakedblocks").compactMap(Int.init)
        let c = report.summary.classes
        #expect(blocks.reduce(0, +) == c.definitelyLost.blocks + c.indirectlyLost.blocks + c.possiblyLost.blocks + c.stillReachable.blocks)
        // Unique ids are distinct, loss records numbered 1...n in ascending size.
        let uniques = Self.values(elements, "valgrindoutput/error/unique")
        #expect(Set(uniques).count == uniques.count)
        let texts = Self.values(elements, "valgrindoutput/error/xwhat/text")
        #expect(texts.first?.hasSuffix("in loss record 1 of \(texts.count)") == true)
        let sizes = Self.values(elements, "valgrindoutput/error/xwhat/leakedbytes").compactMap(UInt64.init)
        #expect(sizes == sizes.sorted())
        // Stacks carry fn, file and line of the program's frames.
        #expect(Self.values(elements, "valgrindoutput/error/stack/frame/fn").contains("lv_tree_node"))
        #expect(Self.values(elements, "valgrindoutput/error/stack/frame/file").contains("lv-leak-tree.c"))
        #expect(Self.values(elements, "valgrindoutput/error/stack/frame/dir").allSatisfy { $0.hasSuffix("programs") })
        #expect(!Self.values(elements, "valgrindoutput/error/stack/frame/line").isEmpty)
        #expect(Self.values(elements, "valgrindoutput/errorcounts").count == 1)
        #expect(Self.values(elements, "valgrindoutput/suppcounts").count == 1)
    }

    @Test func aDirectLeakWithIndirectBytesIsWordedLikeMemcheck() throws {
        var report = try ReportFixtures.leakTree()
        let index = try #require(report.processes[0].groups.firstIndex { $0.reachability == .directLeak })
        report.processes[0].groups[index].indirectBytes = 64
        let group = report.processes[0].groups[index]
        let xml = String(decoding: try ReportRenderer.render(report, as: .valgrindXML), as: UTF8.self)
        #expect(xml.contains("\(group.bytes + 64) (\(group.bytes) direct, 64 indirect) bytes in \(group.blocks) blocks are definitely lost in loss record"))
    }

    @Test func findingsAreErrorsCountedInErrorcounts() throws {
        let report = try ReportFixtures.leakCxx()
        let elements = try Self.parse(try ReportRenderer.render(report, as: .valgrindXML))
        #expect(Self.values(elements, "valgrindoutput/error/kind").contains("MismatchedFree"))
        #expect(Self.values(elements, "valgrindoutput/errorcounts/pair/count") == ["1"])
        let unique = Self.values(elements, "valgrindoutput/errorcounts/pair/unique")
        #expect(unique.count == 1 && Self.values(elements, "valgrindoutput/error/unique").contains(unique[0]))
    }

    @Test func suppressionCountsBecomeSuppcounts() throws {
        var report = try ReportFixtures.leakTree()
        report.suppressed = [SuppressedCount(name: "tree <nodes> & co", groups: 3, blocks: 7, bytes: 176),
                             SuppressedCount(name: "unused")]
        let elements = try Self.parse(try ReportRenderer.render(report, as: .valgrindXML))
        #expect(Self.values(elements, "valgrindoutput/suppcounts/pair/name") == ["tree <nodes> & co"])
        #expect(Self.values(elements, "valgrindoutput/suppcounts/pair/count") == ["3"])
    }

    @Test func edgeCasesStayWellFormed() throws {
        for report in [try ReportFixtures.empty(), try ReportFixtures.unsymbolized(), try ReportFixtures.huge()] {
            let elements = try Self.parse(try ReportRenderer.render(report, as: .valgrindXML))
            #expect(Self.values(elements, "valgrindoutput/protocolversion") == ["4"])
        }
        let huge = try Self.parse(try ReportRenderer.render(try ReportFixtures.huge(), as: .valgrindXML))
        #expect(Self.values(huge, "valgrindoutput/error/xwhat/leakedbytes").contains("\(UInt64.max)"))
        #expect(Self.values(huge, "valgrindoutput/error/xwhat/leakedblocks").contains("\(Int.max)"))
    }

    @Test func controlCharactersFromTheGuestAreNotWrittenRaw() throws {
        var report = try ReportFixtures.leakTree()
        report.processes[0].groups[0].frames[1].function = "evil\u{1}</fn><fn>x"
        let data = try ReportRenderer.render(report, as: .valgrindXML)
        let elements = try Self.parse(data)
        #expect(Self.values(elements, "valgrindoutput/error/stack/frame/fn").contains("evil\u{FFFD}</fn><fn>x"))
    }
}
