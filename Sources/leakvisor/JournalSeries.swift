import LeakAnalysis
import LeakJournal
import ReportFormats

/// The HTML report's plots from a journal: outstanding bytes over the kept samples, per process
/// and per top allocation site, up to the sample the report is of.
enum JournalSeries {
    static let topSites = 8

    static func outstanding(_ reader: JournalReader, through sample: JournalSample) throws -> [OutstandingSeries] {
        var processes: [String: [OutstandingSeries.Point]] = [:]
        var order: [String] = []
        for kept in try reader.samples() where kept.seconds <= sample.seconds {
            for process in try reader.report(of: kept).processes {
                let name = "\(process.command ?? "?") (pid \(process.pid.map(String.init) ?? "?"))"
                if processes[name] == nil { order.append(name) }
                processes[name, default: []].append(.init(seconds: kept.seconds, bytes: process.outstandingBytes))
            }
        }
        let sites = try reader.siteSeries(through: sample)
        let top = sites.sorted { ($0.value.last?.totals.bytes ?? 0) > ($1.value.last?.totals.bytes ?? 0) }.prefix(topSites)
        let described = try reader.describe(top.map(\.key.siteKey))
        return order.map { OutstandingSeries(subject: .process, name: $0, points: processes[$0] ?? []) }
            + top.map { site, points in
                let where_ = described[site.siteKey].flatMap { description in
                    description.frames.dropFirst().first { $0.function != nil }?.function.map { "\(description.function) from \($0)" }
                } ?? described[site.siteKey]?.function ?? site.siteKey
                return OutstandingSeries(subject: .site, name: "\(site.command): \(where_)",
                                         points: points.map { .init(seconds: $0.seconds, bytes: $0.totals.bytes) })
            }
    }
}
