import Crypto
import Foundation

/// API tokens are derived, not stored: a user's token is an HMAC-SHA256 of the user id and
/// a token generation under `SECRET_KEY`, 40 hex digits like Django REST Framework's. The
/// database keeps only the SHA-256 of each token, so a stolen database gives no token, and
/// asking again for the same email gives the same token. Changing `SECRET_KEY` changes every
/// token (each user's is re-issued by the next request for it).
public struct TokenMinter: Sendable {
    private let secret: Data

    public init(secretKey: String) {
        secret = Data(secretKey.utf8)
    }

    public func token(userID: Int64, generation: Int) -> String {
        let mac = HMAC<SHA256>.authenticationCode(
            for: Data("seed-scheduler/api-token/\(userID)/\(generation)".utf8), using: SymmetricKey(data: secret))
        return String(Self.hex(Data(mac)).prefix(40))
    }

    public static func hash(_ token: String) -> String {
        hex(Data(SHA256.hash(data: Data(token.utf8))))
    }

    static func hex(_ data: Data) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(data.count * 2)
        for byte in data {
            bytes.append(digits[Int(byte >> 4)])
            bytes.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
