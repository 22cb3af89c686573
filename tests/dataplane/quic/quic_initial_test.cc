// Tests for the QUIC client Initial decryptor: RFC 9001 and RFC 9369 Appendix A vectors, corruption and
// truncation of those packets, coalesced datagrams, and Initials built by the test protector with
// out-of-order CRYPTO frames.
#include "dataplane/quic/quic_initial.h"

#include <gtest/gtest.h>
#include <openssl/crypto.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "tests/dataplane/quic/initial_protector.h"

namespace vgate::dataplane::quic {
namespace {

using testing::appendCryptoFrame;
using testing::appendVarint;
using testing::InitialSpec;
using testing::protectClientInitial;

// Counts OpenSSL's heap allocations, to check that decrypting a packet of a known DCID allocates nothing. The
// hooks can only be installed before OpenSSL's first allocation, hence a static initializer.
std::atomic<size_t> opensslAllocations{0};
const bool kAllocationHooksInstalled = CRYPTO_set_mem_functions(
                                           [](size_t size, const char*, int) {
                                             ++opensslAllocations;
                                             return std::malloc(size);
                                           },
                                           [](void* pointer, size_t size, const char*, int) {
                                             ++opensslAllocations;
                                             return std::realloc(pointer, size);
                                           },
                                           [](void* pointer, const char*, int) { std::free(pointer); }) == 1;

// RFC 9001 Appendix A.2 and A.3, RFC 9369 Appendix A.2 and A.3, verbatim.
constexpr const char* kV1ClientInitial =
    "c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11d242b123dc9bd8bab936b47d92ec356c"
    "0bab7df5976d27cd449f63300099f3991c260ec4c60d17b31f8429157bb35a1282a643a8d2262cad67500cadb8e7378c"
    "8eb7539ec4d4905fed1bee1fc8aafba17c750e2c7ace01e6005f80fcb7df621230c83711b39343fa028cea7f7fb5ff89"
    "eac2308249a02252155e2347b63d58c5457afd84d05dfffdb20392844ae812154682e9cf012f9021a6f0be17ddd0c208"
    "4dce25ff9b06cde535d0f920a2db1bf362c23e596d11a4f5a6cf3948838a3aec4e15daf8500a6ef69ec4e3feb6b1d98e"
    "610ac8b7ec3faf6ad760b7bad1db4ba3485e8a94dc250ae3fdb41ed15fb6a8e5eba0fc3dd60bc8e30c5c4287e53805db"
    "059ae0648db2f64264ed5e39be2e20d82df566da8dd5998ccabdae053060ae6c7b4378e846d29f37ed7b4ea9ec5d82e7"
    "961b7f25a9323851f681d582363aa5f89937f5a67258bf63ad6f1a0b1d96dbd4faddfcefc5266ba6611722395c906556"
    "be52afe3f565636ad1b17d508b73d8743eeb524be22b3dcbc2c7468d54119c7468449a13d8e3b95811a198f3491de3e7"
    "fe942b330407abf82a4ed7c1b311663ac69890f4157015853d91e923037c227a33cdd5ec281ca3f79c44546b9d90ca00"
    "f064c99e3dd97911d39fe9c5d0b23a229a234cb36186c4819e8b9c5927726632291d6a418211cc2962e20fe47feb3edf"
    "330f2c603a9d48c0fcb5699dbfe5896425c5bac4aee82e57a85aaf4e2513e4f05796b07ba2ee47d80506f8d2c25e50fd"
    "14de71e6c418559302f939b0e1abd576f279c4b2e0feb85c1f28ff18f58891ffef132eef2fa09346aee33c28eb130ff2"
    "8f5b766953334113211996d20011a198e3fc433f9f2541010ae17c1bf202580f6047472fb36857fe843b19f5984009dd"
    "c324044e847a4f4a0ab34f719595de37252d6235365e9b84392b061085349d73203a4a13e96f5432ec0fd4a1ee65accd"
    "d5e3904df54c1da510b0ff20dcc0c77fcb2c0e0eb605cb0504db87632cf3d8b4dae6e705769d1de354270123cb11450e"
    "fc60ac47683d7b8d0f811365565fd98c4c8eb936bcab8d069fc33bd801b03adea2e1fbc5aa463d08ca19896d2bf59a07"
    "1b851e6c239052172f296bfb5e72404790a2181014f3b94a4e97d117b438130368cc39dbb2d198065ae3986547926cd2"
    "162f40a29f0c3c8745c0f50fba3852e566d44575c29d39a03f0cda721984b6f440591f355e12d439ff150aab7613499d"
    "bd49adabc8676eef023b15b65bfc5ca06948109f23f350db82123535eb8a7433bdabcb909271a6ecbcb58b936a88cd4e"
    "8f2e6ff5800175f113253d8fa9ca8885c2f552e657dc603f252e1a8e308f76f0be79e2fb8f5d5fbbe2e30ecadd220723"
    "c8c0aea8078cdfcb3868263ff8f0940054da48781893a7e49ad5aff4af300cd804a6b6279ab3ff3afb64491c85194aab"
    "760d58a606654f9f4400e8b38591356fbf6425aca26dc85244259ff2b19c41b9f96f3ca9ec1dde434da7d2d392b905dd"
    "f3d1f9af93d1af5950bd493f5aa731b4056df31bd267b6b90a079831aaf579be0a39013137aac6d404f518cfd4684064"
    "7e78bfe706ca4cf5e9c5453e9f7cfd2b8b4c8d169a44e55c88d4a9a7f9474241e221af44860018ab0856972e194cd934";

constexpr const char* kClientCryptoFrame =
    "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e86804fe3a47f06a2b69484c000004130113"
    "02010000c000000010000e00000b6578616d706c652e636f6dff01000100000a00080006001d00170018001000070005"
    "04616c706e000500050100000000003300260024001d00209370b2c9caa47fbabaf4559fedba753de171fa71f50f1ce1"
    "5d43e994ec74d748002b0003020304000d0010000e0403050306030203080408050806002d00020101001c0002400100"
    "3900320408ffffffffffffffff05048000ffff07048000ffff0801100104800075300901100f088394c8f03e51570806"
    "048000ffff";

constexpr const char* kV1ServerInitial =
    "cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a5816b6394100f37a1c69797554780bb3"
    "8cc5a99f5ede4cf73c3ec2493a1839b3dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84"
    "022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc42158407dd074ee";

constexpr const char* kV2ClientInitial =
    "d76b3343cf088394c8f03e5157080000449ea0c95e82ffe67b6abcdb4298b485dd04de806071bf03dceebfa162e75d6c"
    "96058bdbfb127cdfcbf903388e99ad049f9a3dd4425ae4d0992cfff18ecf0fdb5a842d09747052f17ac2053d21f57c5d"
    "250f2c4f0e0202b70785b7946e992e58a59ac52dea6774d4f03b55545243cf1a12834e3f249a78d395e0d18f4d766004"
    "f1a2674802a747eaa901c3f10cda5500cb9122faa9f1df66c392079a1b40f0de1c6054196a11cbea40afb6ef5253cd68"
    "18f6625efce3b6def6ba7e4b37a40f7732e093daa7d52190935b8da58976ff3312ae50b187c1433c0f028edcc4c2838b"
    "6a9bfc226ca4b4530e7a4ccee1bfa2a3d396ae5a3fb512384b2fdd851f784a65e03f2c4fbe11a53c7777c023462239dd"
    "6f7521a3f6c7d5dd3ec9b3f233773d4b46d23cc375eb198c63301c21801f6520bcfb7966fc49b393f0061d974a2706df"
    "8c4a9449f11d7f3d2dcbb90c6b877045636e7c0c0fe4eb0f697545460c806910d2c355f1d253bc9d2452aaa549e27a1f"
    "ac7cf4ed77f322e8fa894b6a83810a34b361901751a6f5eb65a0326e07de7c1216ccce2d0193f958bb3850a833f7ae43"
    "2b65bc5a53975c155aa4bcb4f7b2c4e54df16efaf6ddea94e2c50b4cd1dfe06017e0e9d02900cffe1935e0491d77ffb4"
    "fdf85290fdd893d577b1131a610ef6a5c32b2ee0293617a37cbb08b847741c3b8017c25ca9052ca1079d8b78aebd4787"
    "6d330a30f6a8c6d61dd1ab5589329de714d19d61370f8149748c72f132f0fc99f34d766c6938597040d8f9e2bb522ff9"
    "9c63a344d6a2ae8aa8e51b7b90a4a806105fcbca31506c446151adfeceb51b91abfe43960977c87471cf9ad4074d30e1"
    "0d6a7f03c63bd5d4317f68ff325ba3bd80bf4dc8b52a0ba031758022eb025cdd770b44d6d6cf0670f4e990b22347a7db"
    "848265e3e5eb72dfe8299ad7481a408322cac55786e52f633b2fb6b614eaed18d703dd84045a274ae8bfa73379661388"
    "d6991fe39b0d93debb41700b41f90a15c4d526250235ddcd6776fc77bc97e7a417ebcb31600d01e57f32162a8560cacc"
    "7e27a096d37a1a86952ec71bd89a3e9a30a2a26162984d7740f81193e8238e61f6b5b984d4d3dfa033c1bb7e4f0037fe"
    "bf406d91c0dccf32acf423cfa1e7071010d3f270121b493ce85054ef58bada42310138fe081adb04e2bd901f2f13458b"
    "3d6758158197107c14ebb193230cd1157380aa79cae1374a7c1e5bbcb80ee23e06ebfde206bfb0fcbc0edc4ebec30966"
    "1bdd908d532eb0c6adc38b7ca7331dce8dfce39ab71e7c32d318d136b6100671a1ae6a6600e3899f31f0eed19e3417d1"
    "34b90c9058f8632c798d4490da4987307cba922d61c39805d072b589bd52fdf1e86215c2d54e6670e07383a27bbffb5a"
    "ddf47d66aa85a0c6f9f32e59d85a44dd5d3b22dc2be80919b490437ae4f36a0ae55edf1d0b5cb4e9a3ecabee93dfc6e3"
    "8d209d0fa6536d27a5d6fbb17641cde27525d61093f1b28072d111b2b4ae5f89d5974ee12e5cf7d5da4d6a31123041f3"
    "3e61407e76cffcdcfd7e19ba58cf4b536f4c4938ae79324dc402894b44faf8afbab35282ab659d13c93f70412e85cb19"
    "9a37ddec600545473cfb5a05e08d0b209973b2172b4d21fb69745a262ccde96ba18b2faa745b6fe189cf772a9f84cbfc";

constexpr const char* kV2ServerInitial =
    "dc6b3343cf0008f067a5502a4262b5004075d92faaf16f05d8a4398c47089698baeea26b91eb761d9b89237bbf872630"
    "17915358230035f7fd3945d88965cf17f9af6e16886c61bfc703106fbaf3cb4cfa52382dd16a393e42757507698075b2"
    "c984c707f0a0812d8cd5a6881eaf21ceda98f4bd23f6fe1a3e2c43edd9ce7ca84bed8521e2e140";

std::vector<uint8_t> fromHex(const std::string& hex) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
  return out;
}

std::vector<uint8_t> bytes(const uint8_t* data, size_t length) {
  return std::vector<uint8_t>(data, data + length);
}

const std::vector<uint8_t> kDcid = fromHex("8394c8f03e515708");

class QuicInitialTest : public ::testing::Test {
 protected:
  // Decrypts from an exactly sized heap copy, so that AddressSanitizer catches any read past the end.
  QuicStatus decrypt(const std::vector<uint8_t>& datagram, InitialPacket& out) {
    std::vector<uint8_t> copy(datagram);
    plaintext_.assign(datagram.size() + 1, 0xee);
    return decryptor_.decryptClientInitial(copy.empty() ? nullptr : copy.data(), copy.size(),
                                           plaintext_.data(), plaintext_.size(), out);
  }

  std::vector<uint8_t> cryptoData(const InitialPacket& packet, size_t index) {
    const CryptoFrame& frame = packet.crypto[index];
    return bytes(plaintext_.data() + frame.dataOffset, frame.length);
  }

  InitialDecryptor decryptor_;
  std::vector<uint8_t> plaintext_;
};

void expectKeys(InitialDecryptor& decryptor, uint32_t version, const char* initialSecret,
                const char* clientSecret, const char* key, const char* iv, const char* hp) {
  InitialKeys keys;
  ASSERT_TRUE(decryptor.deriveClientKeys(version, kDcid.data(), kDcid.size(), keys));
  EXPECT_EQ(bytes(keys.initialSecret, 32), fromHex(initialSecret));
  EXPECT_EQ(bytes(keys.clientSecret, 32), fromHex(clientSecret));
  EXPECT_EQ(bytes(keys.key, 16), fromHex(key));
  EXPECT_EQ(bytes(keys.iv, 12), fromHex(iv));
  EXPECT_EQ(bytes(keys.hp, 16), fromHex(hp));
}

TEST_F(QuicInitialTest, Rfc9001KeysA1) {
  expectKeys(decryptor_, kVersion1, "7db5df06e7a69e432496adedb00851923595221596ae2ae9fb8115c1e9ed0a44",
             "c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea",
             "1f369613dd76d5467730efcbe3b1a22d", "fa044b2f42a3fd3b46fb255c",
             "9f50449e04a0e810283a1e9933adedd2");
}

TEST_F(QuicInitialTest, Rfc9369KeysA1) {
  expectKeys(decryptor_, kVersion2, "2062e8b3cd8d52092614b8071d0aa1fb7c2e3ac193f78b280e72d8f5751f6aba",
             "14ec9d6eb9fd7af83bf5a668bc17a7e283766aade7ecd0891f70f9ff7f4bf47b",
             "8b1a0bc121284290a29e0971b5cd045d", "91f73e2351d8fa91660e909f",
             "45b95e15235d6f45a6b19cbcb0294ba9");
}

TEST_F(QuicInitialTest, DeriveRejectsBadInput) {
  InitialKeys keys;
  EXPECT_FALSE(decryptor_.deriveClientKeys(0xff00001d, kDcid.data(), kDcid.size(), keys));
  uint8_t longCid[21] = {};
  EXPECT_FALSE(decryptor_.deriveClientKeys(kVersion1, longCid, sizeof(longCid), keys));
  EXPECT_TRUE(decryptor_.deriveClientKeys(kVersion1, nullptr, 0, keys));
}

void expectRfcClientInitial(const std::vector<uint8_t>& plaintext, const InitialPacket& packet,
                            uint32_t version) {
  EXPECT_EQ(packet.version, version);
  EXPECT_EQ(bytes(packet.dcid, packet.dcidLength), kDcid);
  EXPECT_EQ(packet.scidLength, 0);
  EXPECT_EQ(packet.packetNumber, 2u);
  EXPECT_EQ(packet.packetLength, 1200u);
  EXPECT_EQ(packet.plaintextLength, 1162u);
  ASSERT_EQ(packet.cryptoFrameCount, 1);
  EXPECT_FALSE(packet.cryptoFramesTruncated);
  const std::vector<uint8_t> frame = fromHex(kClientCryptoFrame);
  EXPECT_EQ(packet.crypto[0].offset, 0u);
  EXPECT_EQ(packet.crypto[0].length, 241u);
  EXPECT_EQ(packet.crypto[0].dataOffset, 4u);
  // The whole plaintext: the CRYPTO frame, then PADDING up to 1162 bytes.
  std::vector<uint8_t> expected = frame;
  expected.resize(1162, 0x00);
  EXPECT_EQ(bytes(plaintext.data(), 1162), expected);
  // The ClientHello itself starts with its handshake header: type 1, length 0x0000ed.
  EXPECT_EQ(bytes(plaintext.data() + 4, 4), fromHex("010000ed"));
}

TEST_F(QuicInitialTest, Rfc9001ClientInitialA2) {
  InitialPacket packet;
  ASSERT_EQ(decrypt(fromHex(kV1ClientInitial), packet), QuicStatus::kOk);
  expectRfcClientInitial(plaintext_, packet, kVersion1);
}

TEST_F(QuicInitialTest, Rfc9369ClientInitialA2) {
  InitialPacket packet;
  ASSERT_EQ(decrypt(fromHex(kV2ClientInitial), packet), QuicStatus::kOk);
  expectRfcClientInitial(plaintext_, packet, kVersion2);
}

TEST_F(QuicInitialTest, DecryptingAKnownDcidAllocatesNothing) {
  if (!kAllocationHooksInstalled) GTEST_SKIP() << "OpenSSL allocated before the hooks could be installed";
  const auto v1 = fromHex(kV1ClientInitial);
  std::vector<uint8_t> plaintext(v1.size());
  InitialPacket packet;
  ASSERT_EQ(decryptor_.decryptClientInitial(v1.data(), v1.size(), plaintext.data(), plaintext.size(), packet),
            QuicStatus::kOk);
  const size_t before = opensslAllocations.load();
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(
        decryptor_.decryptClientInitial(v1.data(), v1.size(), plaintext.data(), plaintext.size(), packet),
        QuicStatus::kOk);
  }
  EXPECT_EQ(opensslAllocations.load() - before, 0u);
  // A new DCID means a key derivation; report (not assert) what OpenSSL 3.0's HMAC re-keying costs.
  const auto v2 = fromHex(kV2ClientInitial);
  const size_t beforeDerive = opensslAllocations.load();
  ASSERT_EQ(decryptor_.decryptClientInitial(v2.data(), v2.size(), plaintext.data(), plaintext.size(), packet),
            QuicStatus::kOk);
  RecordProperty("allocations_per_new_dcid", static_cast<int>(opensslAllocations.load() - beforeDerive));
}

TEST_F(QuicInitialTest, AlternatingVersionsAndCidsUseTheRightKeys) {
  const auto v1 = fromHex(kV1ClientInitial);
  const auto v2 = fromHex(kV2ClientInitial);
  InitialSpec spec;
  spec.dcid = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  const uint8_t hello[] = {1, 0, 0, 1, 0xaa};
  std::vector<uint8_t> frames;
  appendCryptoFrame(frames, 0, hello, sizeof(hello));
  const auto other = protectClientInitial(decryptor_, spec, frames);
  for (int round = 0; round < 3; ++round) {
    InitialPacket packet;
    EXPECT_EQ(decrypt(v1, packet), QuicStatus::kOk);
    EXPECT_EQ(decrypt(v2, packet), QuicStatus::kOk);
    EXPECT_EQ(decrypt(other, packet), QuicStatus::kOk);
    EXPECT_EQ(decrypt(v2, packet), QuicStatus::kOk);
  }
}

// The server's Initials are of Initial type but keyed with "server in": with client keys they must not
// verify.
TEST_F(QuicInitialTest, ServerInitialIsNotAClientInitial) {
  InitialPacket packet;
  EXPECT_EQ(decrypt(fromHex(kV1ServerInitial), packet), QuicStatus::kDecryptFailed);
  EXPECT_EQ(packet.packetLength, 135u);
  EXPECT_EQ(packet.scidLength, 8);
  EXPECT_EQ(decrypt(fromHex(kV2ServerInitial), packet), QuicStatus::kDecryptFailed);
  EXPECT_EQ(packet.packetLength, 135u);
}

TEST_F(QuicInitialTest, EveryFlippedByteIsRejected) {
  for (const char* hex : {kV1ClientInitial, kV2ClientInitial}) {
    const auto original = fromHex(hex);
    for (size_t i = 0; i < original.size(); ++i) {
      for (uint8_t flip : {uint8_t{0x01}, uint8_t{0x80}}) {
        auto corrupted = original;
        corrupted[i] ^= flip;
        InitialPacket packet;
        const QuicStatus status = decrypt(corrupted, packet);
        ASSERT_NE(status, QuicStatus::kOk) << "byte " << i << " flip " << int{flip};
        // From the packet number on, everything is covered by the tag.
        if (i >= 18) {
          ASSERT_EQ(status, QuicStatus::kDecryptFailed) << "byte " << i;
        }
        for (size_t k = 0; k < packet.cryptoFrameCount; ++k) {
          ASSERT_LE(packet.crypto[k].dataOffset + packet.crypto[k].length, packet.plaintextLength);
        }
      }
    }
  }
}

TEST_F(QuicInitialTest, EveryTruncationIsRejected) {
  for (const char* hex : {kV1ClientInitial, kV2ClientInitial}) {
    const auto original = fromHex(hex);
    for (size_t length = 0; length < original.size(); ++length) {
      InitialPacket packet;
      const QuicStatus status =
          decrypt(std::vector<uint8_t>(original.begin(), original.begin() + length), packet);
      ASSERT_NE(status, QuicStatus::kOk) << "length " << length;
      if (length >= 5) {
        ASSERT_EQ(status, QuicStatus::kTruncated) << "length " << length;
      }
    }
  }
}

TEST_F(QuicInitialTest, UnsupportedVersions) {
  for (uint32_t version : {0x00000000u, 0xff00001du, 0x1a2a3a4au, 0x709a50c4u, 0x00000002u}) {
    auto datagram = fromHex(kV1ClientInitial);
    for (int i = 0; i < 4; ++i) datagram[1 + i] = static_cast<uint8_t>(version >> (8 * (3 - i)));
    InitialPacket packet;
    EXPECT_EQ(decrypt(datagram, packet), QuicStatus::kUnsupportedVersion) << std::hex << version;
  }
}

TEST_F(QuicInitialTest, NotQuic) {
  InitialPacket packet;
  EXPECT_EQ(decrypt({}, packet), QuicStatus::kNotQuic);
  EXPECT_EQ(decrypt({0xc0, 0x00, 0x00, 0x00}, packet), QuicStatus::kNotQuic);
  // RFC 9001 Appendix A.5: a short header packet.
  EXPECT_EQ(decrypt(fromHex("4cfe4189655e5cd55c41f69080575d7999c25a5bfb"), packet), QuicStatus::kNotQuic);
  // A long header with the fixed bit clear.
  auto datagram = fromHex(kV1ClientInitial);
  datagram[0] &= ~0x40;
  EXPECT_EQ(decrypt(datagram, packet), QuicStatus::kNotQuic);
}

std::vector<uint8_t> handshakePacket(uint32_t version, size_t payloadLength) {
  std::vector<uint8_t> out;
  out.push_back(version == kVersion2 ? 0xf3 : 0xe3);  // Handshake: type 2 in v1, 3 in v2
  for (int i = 3; i >= 0; --i) out.push_back(static_cast<uint8_t>(version >> (8 * i)));
  out.push_back(8);
  out.insert(out.end(), kDcid.begin(), kDcid.end());
  out.push_back(0);
  appendVarint(out, payloadLength);
  out.resize(out.size() + payloadLength, 0x5a);
  return out;
}

TEST_F(QuicInitialTest, OtherPacketTypesAreNotInitial) {
  InitialPacket packet;
  for (uint32_t version : {kVersion1, kVersion2}) {
    const auto handshake = handshakePacket(version, 40);
    EXPECT_EQ(decrypt(handshake, packet), QuicStatus::kNotInitial);
    EXPECT_EQ(packet.packetLength, handshake.size());
  }
  // The v1 Initial type bits on a v2 packet mean Retry, and v2's Initial bits on a v1 packet mean 0-RTT.
  auto v1 = fromHex(kV1ClientInitial);
  v1[0] = static_cast<uint8_t>((v1[0] & 0xcf) | 0x10);
  EXPECT_EQ(decrypt(v1, packet), QuicStatus::kNotInitial);
  // 0-RTT has no token field, so the Initial's token length byte (0) reads as a Length of 0.
  EXPECT_EQ(packet.packetLength, 16u);
  auto v2 = fromHex(kV2ClientInitial);
  v2[0] = static_cast<uint8_t>(v2[0] & 0xcf);
  EXPECT_EQ(decrypt(v2, packet), QuicStatus::kNotInitial);
  // RFC 9369 Appendix A.4: a v2 Retry.
  EXPECT_EQ(
      decrypt(fromHex("cf6b3343cf0008f067a5502a4262b5746f6b656ec8646ce8bfe33952d955543665dcc7b6"), packet),
      QuicStatus::kNotInitial);
}

TEST_F(QuicInitialTest, CoalescedDatagramReportsPacketLength) {
  for (const char* hex : {kV1ClientInitial, kV2ClientInitial}) {
    auto datagram = fromHex(hex);
    const uint32_t version = datagram[1] == 0 ? kVersion1 : kVersion2;
    const auto handshake = handshakePacket(version, 60);
    datagram.insert(datagram.end(), handshake.begin(), handshake.end());
    InitialPacket packet;
    ASSERT_EQ(decrypt(datagram, packet), QuicStatus::kOk);
    EXPECT_EQ(packet.packetLength, 1200u);
    EXPECT_EQ(packet.packetNumber, 2u);
    const std::vector<uint8_t> rest(datagram.begin() + packet.packetLength, datagram.end());
    EXPECT_EQ(decrypt(rest, packet), QuicStatus::kNotInitial);
    EXPECT_EQ(packet.packetLength, handshake.size());
  }
}

TEST_F(QuicInitialTest, CoalescedInitialsDecryptOneAfterTheOther) {
  const uint8_t hello[] = {1, 0, 0, 6, 'a', 'b', 'c', 'd', 'e', 'f'};
  InitialSpec spec;
  spec.token = {9, 9, 9};
  std::vector<uint8_t> first;
  appendCryptoFrame(first, 0, hello, 4);
  std::vector<uint8_t> second;
  appendCryptoFrame(second, 4, hello + 4, 6);
  spec.packetNumber = 0;
  auto datagram = protectClientInitial(decryptor_, spec, first);
  spec.packetNumber = 1;
  const auto next = protectClientInitial(decryptor_, spec, second);
  const size_t firstLength = datagram.size();
  datagram.insert(datagram.end(), next.begin(), next.end());

  InitialPacket packet;
  ASSERT_EQ(decrypt(datagram, packet), QuicStatus::kOk);
  EXPECT_EQ(packet.packetLength, firstLength);
  EXPECT_EQ(packet.packetNumber, 0u);
  ASSERT_EQ(packet.cryptoFrameCount, 1);
  EXPECT_EQ(cryptoData(packet, 0), bytes(hello, 4));
  ASSERT_EQ(decrypt(std::vector<uint8_t>(datagram.begin() + packet.packetLength, datagram.end()), packet),
            QuicStatus::kOk);
  EXPECT_EQ(packet.packetNumber, 1u);
  ASSERT_EQ(packet.cryptoFrameCount, 1);
  EXPECT_EQ(packet.crypto[0].offset, 4u);
  EXPECT_EQ(cryptoData(packet, 0), bytes(hello + 4, 6));
}

TEST_F(QuicInitialTest, RoundTripOutOfOrderCryptoFrames) {
  std::vector<uint8_t> hello(700);
  for (size_t i = 0; i < hello.size(); ++i) hello[i] = static_cast<uint8_t>(i * 7 + 3);
  struct Piece {
    uint64_t offset;
    size_t length;
  };
  const Piece pieces[] = {{300, 400}, {0, 100}, {100, 200}};
  for (uint32_t version : {kVersion1, kVersion2}) {
    for (size_t pnLength = 1; pnLength <= 4; ++pnLength) {
      InitialSpec spec;
      spec.version = version;
      spec.dcid = {0xde, 0xad, static_cast<uint8_t>(pnLength), 0xbe, 0xef};
      spec.scid = {0x11, 0x22, 0x33};
      spec.token.assign(pnLength * 30, 0x77);
      spec.packetNumber = (uint64_t{1} << (8 * pnLength - 1)) + 5;
      spec.packetNumberLength = pnLength;
      std::vector<uint8_t> frames = {0x01, 0x00, 0x00};  // PING, PADDING
      // ACK_ECN of packets 0-3 and 7-10 of the server.
      frames.insert(frames.end(), {0x03, 10, 0, 1, 3, 2, 3, 1, 2, 3});
      for (const Piece& piece : pieces) {
        appendCryptoFrame(frames, piece.offset, hello.data() + piece.offset, piece.length);
        frames.push_back(0x01);
      }
      frames.resize(frames.size() + 200, 0x00);
      const auto datagram = protectClientInitial(decryptor_, spec, frames);
      ASSERT_FALSE(datagram.empty());
      InitialPacket packet;
      ASSERT_EQ(decrypt(datagram, packet), QuicStatus::kOk)
          << "version " << version << " pn length " << pnLength;
      EXPECT_EQ(packet.version, version);
      EXPECT_EQ(packet.packetNumber, spec.packetNumber);
      EXPECT_EQ(packet.packetLength, datagram.size());
      EXPECT_EQ(packet.plaintextLength, frames.size());
      EXPECT_EQ(bytes(packet.dcid, packet.dcidLength), spec.dcid);
      EXPECT_EQ(bytes(packet.scid, packet.scidLength), spec.scid);
      ASSERT_EQ(packet.cryptoFrameCount, 3);
      for (size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(packet.crypto[i].offset, pieces[i].offset);
        EXPECT_EQ(packet.crypto[i].length, pieces[i].length);
        EXPECT_EQ(cryptoData(packet, i),
                  std::vector<uint8_t>(hello.begin() + pieces[i].offset,
                                       hello.begin() + pieces[i].offset + pieces[i].length));
      }
    }
  }
}

TEST_F(QuicInitialTest, TooManyCryptoFramesAreCountedAsTruncated) {
  std::vector<uint8_t> frames;
  const uint8_t byte = 0x42;
  for (uint64_t i = 0; i < kMaxCryptoFrames + 3; ++i) appendCryptoFrame(frames, i, &byte, 1);
  const auto datagram = protectClientInitial(decryptor_, InitialSpec{}, frames);
  InitialPacket packet;
  ASSERT_EQ(decrypt(datagram, packet), QuicStatus::kOk);
  EXPECT_EQ(packet.cryptoFrameCount, kMaxCryptoFrames);
  EXPECT_TRUE(packet.cryptoFramesTruncated);
  EXPECT_EQ(packet.crypto[kMaxCryptoFrames - 1].offset, kMaxCryptoFrames - 1);
}

TEST_F(QuicInitialTest, ReservedBitsSetIsMalformed) {
  InitialSpec spec;
  spec.reservedBits = 2;
  const auto datagram = protectClientInitial(decryptor_, spec, {0x01});
  InitialPacket packet;
  EXPECT_EQ(decrypt(datagram, packet), QuicStatus::kMalformed);
}

TEST_F(QuicInitialTest, FramesNotAllowedInInitialAreMalformed) {
  // STREAM, application CONNECTION_CLOSE, NEW_TOKEN, HANDSHAKE_DONE, and CRYPTO with a non-minimal type.
  for (std::vector<uint8_t> frames : std::vector<std::vector<uint8_t>>{{0x08, 0x00, 0x01, 0xaa},
                                                                       {0x1d, 0x00, 0x00},
                                                                       {0x07, 0x01, 0xaa},
                                                                       {0x1e},
                                                                       {0x40, 0x06, 0x00, 0x01, 0xaa}}) {
    const auto datagram = protectClientInitial(decryptor_, InitialSpec{}, frames);
    InitialPacket packet;
    EXPECT_EQ(decrypt(datagram, packet), QuicStatus::kMalformed) << int{frames[0]};
  }
}

TEST_F(QuicInitialTest, BufferTooSmall) {
  const auto datagram = fromHex(kV1ClientInitial);
  std::vector<uint8_t> small(100);
  InitialPacket packet;
  EXPECT_EQ(
      decryptor_.decryptClientInitial(datagram.data(), datagram.size(), small.data(), small.size(), packet),
      QuicStatus::kBufferTooSmall);
  EXPECT_EQ(decryptor_.decryptClientInitial(datagram.data(), datagram.size(), nullptr, 0, packet),
            QuicStatus::kBufferTooSmall);
}

TEST(QuicInitialFramesTest, ValidFrames) {
  InitialPacket packet;
  // PADDING, PING, ACK, CONNECTION_CLOSE with a reason, CRYPTO.
  const auto frames = fromHex(
      "0000010205000000"
      "1c0a0003616263"
      "0600026869");
  ASSERT_EQ(parseInitialFrames(frames.data(), frames.size(), packet), QuicStatus::kOk);
  ASSERT_EQ(packet.cryptoFrameCount, 1);
  EXPECT_EQ(packet.crypto[0].offset, 0u);
  EXPECT_EQ(packet.crypto[0].length, 2u);
  EXPECT_EQ(packet.crypto[0].dataOffset, frames.size() - 2);
}

TEST(QuicInitialFramesTest, MalformedFrames) {
  const char* cases[] = {
      "",                        // no frame at all
      "06",                      // CRYPTO without fields
      "060005616263",            // CRYPTO longer than the packet
      "06ffffffffffffffff01aa",  // CRYPTO ending past 2^62 - 1
      "02050006",                // ACK cut short
      "0205000006",              // ACK whose first range goes below 0
      "020500010004",            // ACK whose second range goes below 0
      "03050000000102",          // ACK_ECN missing one count
      "1c0a0005616263",          // CONNECTION_CLOSE reason longer than the packet
      "4006000161",              // CRYPTO type, non-minimal encoding
      "10",                      // MAX_DATA
      "1f",                      // unknown
  };
  for (const char* hex : cases) {
    const auto frames = fromHex(hex);
    InitialPacket packet;
    EXPECT_EQ(parseInitialFrames(frames.empty() ? nullptr : frames.data(), frames.size(), packet),
              QuicStatus::kMalformed)
        << hex;
  }
}

TEST(QuicInitialFramesTest, AckRangesAreWalked) {
  InitialPacket packet;
  // Largest 20, first range 2 (18..20), gap 1 -> largest 15, range 15 (0..15): reaches exactly 0.
  const auto exact = fromHex("0214000102010f");
  EXPECT_EQ(parseInitialFrames(exact.data(), exact.size(), packet), QuicStatus::kOk);
  const auto below = fromHex("02140001020110");
  EXPECT_EQ(parseInitialFrames(below.data(), below.size(), packet), QuicStatus::kMalformed);
}

TEST(QuicStatusTest, StableNames) {
  EXPECT_STREQ(quicStatusName(QuicStatus::kOk), "ok");
  EXPECT_STREQ(quicStatusName(QuicStatus::kNotQuic), "not_quic");
  EXPECT_STREQ(quicStatusName(QuicStatus::kNotInitial), "not_initial");
  EXPECT_STREQ(quicStatusName(QuicStatus::kUnsupportedVersion), "unsupported_version");
  EXPECT_STREQ(quicStatusName(QuicStatus::kTruncated), "truncated");
  EXPECT_STREQ(quicStatusName(QuicStatus::kMalformed), "malformed");
  EXPECT_STREQ(quicStatusName(QuicStatus::kDecryptFailed), "decrypt_failed");
  EXPECT_STREQ(quicStatusName(QuicStatus::kBufferTooSmall), "buffer_too_small");
  std::set<std::string> names;
  for (int i = 0; i < static_cast<int>(QuicStatus::kCount); ++i) {
    const std::string name = quicStatusName(static_cast<QuicStatus>(i));
    EXPECT_NE(name, "unknown");
    for (char c : name) EXPECT_TRUE((c >= 'a' && c <= 'z') || c == '_') << name;
    names.insert(name);
  }
  EXPECT_EQ(names.size(), static_cast<size_t>(QuicStatus::kCount));
}

}  // namespace
}  // namespace vgate::dataplane::quic
