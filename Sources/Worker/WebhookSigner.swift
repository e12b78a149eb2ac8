import Crypto
import Foundation

/// Standard Webhooks signatures (https://www.standardwebhooks.com): `webhook-id`,
/// `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
/// A secret written `whsec_<base64>` is decoded; any other text is used as its bytes.
public struct WebhookSigner: Sendable {
    let key: Data

    public init(secret: String) {
        if secret.hasPrefix("whsec_"), let decoded = Data(base64Encoded: String(secret.dropFirst(6))) {
            key = decoded
        } else {
            key = Data(secret.utf8)
        }
    }

    public func headers(id: String, timestamp: Int, body: [UInt8]) -> [String] {
        var signed = Data("\(id).\(timestamp).".utf8)
        signed.append(contentsOf: body)
        let mac = HMAC<SHA256>.authenticationCode(for: signed, using: SymmetricKey(data: key))
        return [
            "webhook-id: \(id)", "webhook-timestamp: \(timestamp)", "webhook-signature: v1,\(Data(mac).base64EncodedString())",
        ]
    }
}
