import ArgumentParser

/// `leakvisor bench`: boot time and guest compute speed (filled in below).
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench", abstract: "Measure boot time and guest compute speed.")
    func run() throws { throw ValidationError("not built yet") }
}
