import Foundation
import LeakAnalysis

/// The JSON form: the report value as `run --report` writes it (schema:
/// docs/schemas/leak-report-v2.schema.json).
enum ReportJSON {
    static func encode(_ report: LeakReport) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(report)
    }
}
