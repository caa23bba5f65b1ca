// The body of `POST /v1/drops`. Unknown fields are refused; the ranges a drop may have are
// the engine's (`DropSpec.problems`) plus what only makes sense over the API (stock ≥ 1, a
// start time that parses and is not decades away).
import Engine
import Foundation

struct CreateDropRequest: Decodable {
    var name: String
    var priceCents: Int64
    var totalStock: Int
    var startsAt: String?
    var perUserLimit: Int?
    var reserveTTLMilliseconds: Int?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, priceCents, totalStock, startsAt, perUserLimit, reserveTTLMilliseconds
    }

    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        priceCents = try container.decode(Int64.self, forKey: .priceCents)
        totalStock = try container.decode(Int.self, forKey: .totalStock)
        startsAt = try container.decodeIfPresent(String.self, forKey: .startsAt)
        perUserLimit = try container.decodeIfPresent(Int.self, forKey: .perUserLimit)
        reserveTTLMilliseconds = try container.decodeIfPresent(Int.self, forKey: .reserveTTLMilliseconds)
    }

    /// The validated spec, or 422 listing every problem at once.
    func spec(now: Date) throws -> DropSpec {
        var problems: [String] = []
        var start: Date?
        if let startsAt {
            if let parsed = RFC3339.date(startsAt) {
                start = parsed
            } else {
                problems.append("startsAt must be an RFC 3339 time from 1970 to 2099, e.g. 2026-12-01T18:00:00Z")
            }
        }
        // The API's range, not the engine's (which lets a scenario have a drop of no units).
        if !(1...Defaults.maxTotalStock).contains(totalStock) {
            problems.append("totalStock must be at least 1 and at most \(Defaults.maxTotalStock)")
        }
        let spec = DropSpec(
            name: name, priceCents: priceCents, totalStock: totalStock, startsAt: start,
            perUserLimit: perUserLimit ?? 1,
            reserveTTLMilliseconds: reserveTTLMilliseconds ?? Defaults.reserveTTLMilliseconds)
        problems += spec.problems.filter { !$0.hasPrefix("totalStock") }
        guard problems.isEmpty else { throw APIError(.validationFailed, problems.joined(separator: "; ")) }
        return spec
    }
}
