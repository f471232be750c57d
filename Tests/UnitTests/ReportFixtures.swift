import Foundation
import LeakAnalysis

/// Reports written by real tracked runs of the default image (`leakvisor run --track user
/// --report FILE -- lv-leak-tree` and `-- lv-leak-cxx`), kept in Fixtures/reports.
enum ReportFixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/reports")

    static func report(_ name: String) throws -> LeakReport {
        try JSONDecoder().decode(LeakReport.self, from: Data(contentsOf: directory.appendingPathComponent("\(name).json")))
    }

    /// lv-leak-tree: definite, indirect, possible and still-reachable groups, no findings.
    static func leakTree() throws -> LeakReport { try report("lv-leak-tree") }

    /// lv-leak-cxx: C++ leaks and a mismatched-deallocation finding.
    static func leakCxx() throws -> LeakReport { try report("lv-leak-cxx") }

    /// A report with no process at all.
    static func empty() throws -> LeakReport {
        var report = try leakTree()
        report.processes = []
        report.summary = LeakReport.Summary(outstandingBlocks: 0, outstandingBytes: 0, allocationSites: 0, processes: 0,
                                            findings: 0, classes: ClassTotals())
        report.notes = []
        return report
    }

    /// lv-leak-tree with every frame's symbols, files and modules gone (an unsymbolized guest).
    static func unsymbolized() throws -> LeakReport {
        var report = try leakTree()
        for p in report.processes.indices {
            for g in report.processes[p].groups.indices {
                report.processes[p].groups[g].frames = report.processes[p].groups[g].frames.map { ReportFrame(pc: $0.pc) }
            }
        }
        return report
    }

    /// lv-leak-tree with saturated byte totals, huge counts and an empty stack.
    static func huge() throws -> LeakReport {
        var report = try leakTree()
        report.summary.outstandingBytes = .max
        report.summary.classes.definitelyLost = BlockTotal(blocks: Int.max, bytes: .max)
        report.processes[0].outstandingBytes = .max
        report.processes[0].bytesAllocated = .max
        report.processes[0].allocations = Int.max
        report.processes[0].groups[0].bytes = .max
        report.processes[0].groups[0].blocks = Int.max
        report.processes[0].groups[0].indirectBytes = .max
        report.processes[0].groups[1].frames = []
        report.seconds = .greatestFiniteMagnitude
        return report
    }

    /// Runs a host program; its standard output, or nil when it is not installed or fails.
    static func run(_ executable: String, _ arguments: [String], input: Data? = nil) throws -> (status: Int32, output: Data) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe(), inputPipe = Pipe()
        process.standardOutput = output
        process.standardInput = input == nil ? FileHandle.nullDevice : inputPipe
        try process.run()
        if let input {
            inputPipe.fileHandleForWriting.write(input)
            try inputPipe.fileHandleForWriting.close()
        }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, data)
    }
}
