/// A line plot of one `OutstandingSeries` as inline SVG: outstanding bytes (y) over seconds
/// since tracking started (x), with the axes' extremes labelled.
enum SVGPlot {
    static let width = 560.0, height = 200.0
    static let left = 70.0, right = 10.0, top = 24.0, bottom = 28.0

    static func render(_ series: OutstandingSeries) -> String {
        let points = series.points.filter { $0.seconds.isFinite }.sorted { $0.seconds < $1.seconds }
        let title = XMLText.escape("\(series.subject.rawValue): \(series.name)")
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"plot\" width=\"\(Int(width))\" height=\"\(Int(height))\""
            + " viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"\(title)\">\n"
        svg += "<text x=\"\(left)\" y=\"16\" class=\"plot-title\">\(title)</text>\n"
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        svg += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(plotWidth)\" height=\"\(plotHeight)\" class=\"plot-frame\"/>\n"
        guard let first = points.first, let last = points.last else {
            return svg + "<text x=\"\(left + 10)\" y=\"\(top + 20)\">no samples</text>\n</svg>\n"
        }
        let largest = points.map(\.bytes).max() ?? 0
        let maxBytes = Double(largest)
        let span = max(last.seconds - first.seconds, 1e-9)
        let yScale = maxBytes > 0 ? plotHeight / maxBytes : 0
        let coordinates = points.map { point -> String in
            let x = left + (point.seconds - first.seconds) / span * plotWidth
            let y = top + plotHeight - Double(point.bytes) * yScale
            return "\(format(x)),\(format(y))"
        }
        svg += "<polyline class=\"plot-line\" fill=\"none\" points=\"\(coordinates.joined(separator: " "))\"/>\n"
        svg += "<text x=\"\(left - 6)\" y=\"\(top + 10)\" text-anchor=\"end\">\(HTMLReport.bytes(largest))</text>\n"
        svg += "<text x=\"\(left - 6)\" y=\"\(top + plotHeight)\" text-anchor=\"end\">0</text>\n"
        svg += "<text x=\"\(left)\" y=\"\(height - 8)\">\(format(first.seconds)) s</text>\n"
        svg += "<text x=\"\(width - right)\" y=\"\(height - 8)\" text-anchor=\"end\">\(format(last.seconds)) s</text>\n"
        return svg + "</svg>\n"
    }

    /// One decimal, no exponent.
    static func format(_ value: Double) -> String {
        let tenths = Int((value.isFinite ? min(max(value, -1e12), 1e12) : 0) * 10)
        let sign = tenths < 0 ? "-" : ""
        return "\(sign)\(abs(tenths) / 10).\(abs(tenths) % 10)"
    }
}
