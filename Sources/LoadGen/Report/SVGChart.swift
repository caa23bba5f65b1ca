// Line charts as inline SVG: the HTML report is one self-contained file, nothing fetched.
import Foundation

struct SVGChart {
    struct Series {
        var name: String
        var color: String
        var points: [(x: Double, y: Double)]
    }

    var title: String
    var xLabel: String
    var yLabel: String
    var series: [Series]
    /// Tick positions and their labels on the x axis; evenly spaced numbers when nil.
    var xTicks: [(Double, String)]? = nil
    /// A log-10 y axis, for latencies that span microseconds to minutes.
    var logY = false
    var width = 640.0
    var height = 300.0

    private let left = 64.0, right = 16.0, top = 36.0, bottom = 44.0

    var svg: String {
        let all = series.flatMap(\.points)
        let xMin = all.map(\.x).min() ?? 0
        let xMax = max(all.map(\.x).max() ?? 1, xMin + 1e-9)
        let yMax = Self.niceCeiling(max(all.map(\.y).max() ?? 1, 1e-9))
        let plotW = width - left - right
        let plotH = height - top - bottom
        // Log axis: whole decades from the smallest positive value to the largest.
        let decadeLow = floor(log10(max(all.map(\.y).filter { $0 > 0 }.min() ?? 0.01, 0.001)))
        let decadeHigh = max(ceil(log10(max(all.map(\.y).max() ?? 1, 0.001))), decadeLow + 1)
        func px(_ x: Double) -> Double { left + (x - xMin) / (xMax - xMin) * plotW }
        func py(_ y: Double) -> Double {
            guard logY else { return top + plotH - y / yMax * plotH }
            let fraction = (log10(max(y, pow(10, decadeLow))) - decadeLow) / (decadeHigh - decadeLow)
            return top + plotH - fraction * plotH
        }
        var out =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"\(Self.escape(title))\">"
        out += "<text x=\"\(left)\" y=\"20\" class=\"title\">\(Self.escape(title))</text>"
        let yTicks =
            logY
            ? stride(from: decadeLow, through: decadeHigh, by: 1).map { pow(10, $0) }
            : (0...4).map { yMax * Double($0) / 4 }
        for y in yTicks {
            out += "<line x1=\"\(left)\" x2=\"\(width - right)\" y1=\"\(f(py(y)))\" y2=\"\(f(py(y)))\" class=\"grid\"/>"
            out +=
                "<text x=\"\(left - 6)\" y=\"\(f(py(y) + 4))\" text-anchor=\"end\" class=\"tick\">\(Self.number(y))</text>"
        }
        let ticks =
            xTicks
            ?? (0...5).map { step in
                let x = xMin + (xMax - xMin) * Double(step) / 5
                return (x, Self.number(x))
            }
        for (x, label) in ticks where x >= xMin && x <= xMax {
            out +=
                "<text x=\"\(f(px(x)))\" y=\"\(f(height - bottom + 16))\" text-anchor=\"middle\" class=\"tick\">\(Self.escape(label))</text>"
        }
        out +=
            "<line x1=\"\(left)\" x2=\"\(width - right)\" y1=\"\(f(top + plotH))\" y2=\"\(f(top + plotH))\" class=\"axis\"/>"
        out += "<line x1=\"\(left)\" x2=\"\(left)\" y1=\"\(top)\" y2=\"\(f(top + plotH))\" class=\"axis\"/>"
        out +=
            "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(height - 6))\" text-anchor=\"middle\" class=\"label\">\(Self.escape(xLabel))</text>"
        out +=
            "<text transform=\"translate(14 \(f(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\" class=\"label\">\(Self.escape(yLabel))</text>"
        for (index, line) in series.enumerated() where !line.points.isEmpty {
            let path = line.points.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ")
            out += "<polyline fill=\"none\" stroke=\"\(line.color)\" stroke-width=\"2\" points=\"\(path)\"/>"
            if line.points.count < 30 {
                for point in line.points {
                    out +=
                        "<circle cx=\"\(f(px(point.x)))\" cy=\"\(f(py(point.y)))\" r=\"2.5\" fill=\"\(line.color)\"/>"
                }
            }
            let legendX = width - right - 150
            let legendY = top + 4 + Double(index) * 16
            out += "<rect x=\"\(f(legendX))\" y=\"\(f(legendY))\" width=\"12\" height=\"3\" fill=\"\(line.color)\"/>"
            out +=
                "<text x=\"\(f(legendX + 18))\" y=\"\(f(legendY + 5))\" class=\"tick\">\(Self.escape(line.name))</text>"
        }
        return out + "</svg>"
    }

    private func f(_ value: Double) -> String { String(format: "%.1f", value) }

    static func niceCeiling(_ value: Double) -> Double {
        let magnitude = pow(10, floor(log10(value)))
        for step in [1.0, 2, 2.5, 5, 10] where step * magnitude >= value { return step * magnitude }
        return 10 * magnitude
    }

    static func number(_ value: Double) -> String {
        if value >= 10_000 { return String(format: "%.0fk", value / 1_000) }
        if value == value.rounded() { return String(format: "%.0f", value) }
        return String(format: value < 1 ? "%.2f" : "%.1f", value)
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
