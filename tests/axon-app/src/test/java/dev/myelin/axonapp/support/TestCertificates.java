package dev.myelin.axonapp.support;

import io.grpc.ChannelCredentials;
import io.grpc.TlsChannelCredentials;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.cert.X509v3CertificateBuilder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509ExtensionUtils;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.operator.ContentSigner;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;

import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.Base64;
import java.util.Comparator;
import java.util.Date;
import java.util.stream.Stream;

/**
 * Self-made certificates for the suite, as PEM files in a temporary directory (deleted when the JVM exits): a CA and
 * a server certificate signed by it, valid for {@code localhost}, {@code 127.0.0.1} and {@code ::1} (the suite dials
 * {@code localhost}; cluster nodes advertise and dial {@code 127.0.0.1}), usable for server and client
 * authentication (nodes present it to each other on the cluster port).
 * <ul>
 *     <li>{@link #suite()}: generated once per JVM; every Myelin process of the suite serves it.</li>
 *     <li>{@link #generate(String)}: an unrelated CA and server certificate, e.g. for a client that must be refused
 *     because it trusts another CA.</li>
 * </ul>
 * Files: {@link #caFile()} (CA certificate; what clients trust and what nodes are given as
 * {@code ssl.internal-trust-manager-file}), {@link #certChainFile()} (server certificate, then the CA),
 * {@link #privateKeyFile()} (the server key, PKCS#8).
 */
public final class TestCertificates {

    private static final SecureRandom RANDOM = new SecureRandom();
    private static TestCertificates suite;

    private final String name;
    private final Path caFile;
    private final Path certChainFile;
    private final Path privateKeyFile;
    private final X509Certificate ca;

    private TestCertificates(String name, Path dir, X509Certificate ca) {
        this.name = name;
        this.caFile = dir.resolve("ca.pem");
        this.certChainFile = dir.resolve("server-chain.pem");
        this.privateKeyFile = dir.resolve("server-key.pem");
        this.ca = ca;
    }

    /** The suite's CA and server certificate, generated on first use. */
    public static synchronized TestCertificates suite() {
        if (suite == null) {
            suite = generate("myelin-suite");
        }
        return suite;
    }

    /** A fresh CA (named {@code <name> CA}) and a server certificate for the loopback names, signed by it. */
    public static TestCertificates generate(String name) {
        try {
            Path dir = Files.createTempDirectory("myelin-tls-" + name + "-");
            Runtime.getRuntime().addShutdownHook(new Thread(() -> deleteTree(dir)));
            Instant now = Instant.now();
            Date notBefore = Date.from(now.minus(Duration.ofHours(1)));
            Date notAfter = Date.from(now.plus(Duration.ofDays(30)));
            JcaX509ExtensionUtils extensions = new JcaX509ExtensionUtils();

            KeyPair caKeys = rsaKeyPair();
            X500Name caName = new X500Name("CN=" + name + " CA,O=Myelin test suite");
            X509v3CertificateBuilder caBuilder = new JcaX509v3CertificateBuilder(
                    caName, serial(), notBefore, notAfter, caName, caKeys.getPublic())
                    .addExtension(Extension.basicConstraints, true, new BasicConstraints(0))
                    .addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.keyCertSign | KeyUsage.cRLSign))
                    .addExtension(Extension.subjectKeyIdentifier, false,
                                  extensions.createSubjectKeyIdentifier(caKeys.getPublic()));
            X509Certificate ca = certificate(caBuilder, caKeys.getPrivate());

            KeyPair serverKeys = rsaKeyPair();
            X509v3CertificateBuilder serverBuilder = new JcaX509v3CertificateBuilder(
                    ca, serial(), notBefore, notAfter, new X500Name("CN=localhost,O=Myelin test suite"),
                    serverKeys.getPublic())
                    .addExtension(Extension.basicConstraints, true, new BasicConstraints(false))
                    .addExtension(Extension.keyUsage, true,
                                  new KeyUsage(KeyUsage.digitalSignature | KeyUsage.keyEncipherment))
                    .addExtension(Extension.extendedKeyUsage, false, new ExtendedKeyUsage(
                            new KeyPurposeId[]{KeyPurposeId.id_kp_serverAuth, KeyPurposeId.id_kp_clientAuth}))
                    .addExtension(Extension.subjectAlternativeName, false, new GeneralNames(new GeneralName[]{
                            new GeneralName(GeneralName.dNSName, "localhost"),
                            new GeneralName(GeneralName.iPAddress, "127.0.0.1"),
                            new GeneralName(GeneralName.iPAddress, "::1")}))
                    .addExtension(Extension.subjectKeyIdentifier, false,
                                  extensions.createSubjectKeyIdentifier(serverKeys.getPublic()))
                    .addExtension(Extension.authorityKeyIdentifier, false,
                                  extensions.createAuthorityKeyIdentifier(ca));
            X509Certificate server = certificate(serverBuilder, caKeys.getPrivate());

            TestCertificates certificates = new TestCertificates(name, dir, ca);
            Files.writeString(certificates.caFile, pem("CERTIFICATE", ca.getEncoded()));
            Files.writeString(certificates.certChainFile,
                              pem("CERTIFICATE", server.getEncoded()) + pem("CERTIFICATE", ca.getEncoded()));
            Files.writeString(certificates.privateKeyFile, pem("PRIVATE KEY", pkcs8(serverKeys.getPrivate())));
            return certificates;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (GeneralSecurityException | org.bouncycastle.operator.OperatorCreationException e) {
            throw new IllegalStateException("generating test certificates failed", e);
        }
    }

    public Path caFile() {
        return caFile;
    }

    public Path certChainFile() {
        return certChainFile;
    }

    public Path privateKeyFile() {
        return privateKeyFile;
    }

    public X509Certificate caCertificate() {
        return ca;
    }

    /** A JSSE context that trusts this CA only (for {@link java.net.http.HttpClient}). */
    public SSLContext sslContext() {
        try {
            KeyStore trust = KeyStore.getInstance(KeyStore.getDefaultType());
            trust.load(null, null);
            trust.setCertificateEntry("ca", ca);
            TrustManagerFactory factory = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            factory.init(trust);
            SSLContext context = SSLContext.getInstance("TLS");
            context.init(null, factory.getTrustManagers(), RANDOM);
            return context;
        } catch (GeneralSecurityException | IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /** gRPC transport credentials that trust this CA only. */
    public ChannelCredentials channelCredentials() {
        try {
            return TlsChannelCredentials.newBuilder().trustManager(caFile.toFile()).build();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Override
    public String toString() {
        return "certificates " + name + " (" + caFile.getParent() + ")";
    }

    private static KeyPair rsaKeyPair() throws GeneralSecurityException {
        KeyPairGenerator generator = KeyPairGenerator.getInstance("RSA");
        generator.initialize(2048, RANDOM);
        return generator.generateKeyPair();
    }

    private static BigInteger serial() {
        return new BigInteger(64, RANDOM).add(BigInteger.ONE);
    }

    private static X509Certificate certificate(X509v3CertificateBuilder builder, PrivateKey signer)
            throws GeneralSecurityException, org.bouncycastle.operator.OperatorCreationException {
        ContentSigner contentSigner = new JcaContentSignerBuilder("SHA256withRSA").build(signer);
        X509CertificateHolder holder = builder.build(contentSigner);
        return new JcaX509CertificateConverter().getCertificate(holder);
    }

    /** The key's PKCS#8 encoding (what the JDK gives for RSA private keys). */
    private static byte[] pkcs8(PrivateKey key) {
        if (!"PKCS#8".equals(key.getFormat())) {
            throw new IllegalStateException("unexpected private key format " + key.getFormat());
        }
        return key.getEncoded();
    }

    private static String pem(String type, byte[] der) {
        String base64 = Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII)).encodeToString(der);
        return "-----BEGIN " + type + "-----\n" + base64 + "\n-----END " + type + "-----\n";
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> files = Files.walk(dir)) {
            files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException ignored) {
            // temp dir; best effort
        }
    }
}
