// The JavaScript SDKs against the sandbox, driven by tests/test_js_sdks.py.
//
//   node flow.mjs <step>      step: sp | mi | refused | key | laptop | stray
//
// Each step prints JSON lines (one object per line) for the test to assert on. Tokens are never
// printed, only their decoded claims. The persona's environment (python -m sandbox env --as NAME)
// says who the process is; ACS_ENDPOINT, SMS_FROM, SMS_TO and ACS_CONNECTION_STRING say what to
// call. Any failure the step does not expect ends the process with a non-zero exit code.

import {
  ClientSecretCredential,
  DefaultAzureCredential,
  ManagedIdentityCredential,
} from "@azure/identity";
import { CommunicationIdentityClient } from "@azure/communication-identity";
import { SmsClient } from "@azure/communication-sms";

// The scope the communication SDKs ask for (communication-common's auth policy), so the claims
// printed are those of the token the SDK sends.
const ACS_SCOPE = "https://communication.azure.com//.default";

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

/** The payload of a JWT, decoded without verification: what a learner may look at. */
function claims(jwt) {
  return JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString("utf8"));
}

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

async function createUserAndToken(credentialOrConnection) {
  const client =
    typeof credentialOrConnection === "string"
      ? new CommunicationIdentityClient(credentialOrConnection)
      : new CommunicationIdentityClient(env("ACS_ENDPOINT"), credentialOrConnection);
  const { user, token, expiresOn } = await client.createUserAndToken(["chat"]);
  const c = claims(token);
  emit({
    step: "user",
    id: user.communicationUserId,
    skypeid: c.skypeid,
    acsScope: c.acsScope,
    expiresOn: expiresOn.toISOString(),
  });
}

async function sendSms(credential) {
  const sms = new SmsClient(env("ACS_ENDPOINT"), credential);
  const [result] = await sms.send({
    from: env("SMS_FROM"),
    to: [env("SMS_TO")],
    message: "Hello from JavaScript",
  });
  emit({
    step: "sms",
    to: result.to,
    successful: result.successful,
    messageId: result.messageId,
    httpStatusCode: result.httpStatusCode,
  });
}

async function accessTokenClaims(credential) {
  const at = await credential.getToken(ACS_SCOPE);
  const c = claims(at.token);
  emit({
    step: "token",
    expiresOnTimestamp: at.expiresOnTimestamp,
    ver: c.ver,
    iss: c.iss,
    aud: c.aud,
    appid: c.appid,
    oid: c.oid,
    xms_mirid: c.xms_mirid,
  });
}

const steps = {
  // A service principal with a client secret, at the sandbox's authority.
  async sp() {
    const credential = new ClientSecretCredential(
      env("AZURE_TENANT_ID"),
      env("AZURE_CLIENT_ID"),
      env("AZURE_CLIENT_SECRET"),
      { authorityHost: env("AZURE_AUTHORITY_HOST"), disableInstanceDiscovery: true },
    );
    await accessTokenClaims(credential);
    await createUserAndToken(credential);
    await sendSms(credential);
  },
  // The VM's system-assigned identity, found the way it is found on the VM.
  async mi() {
    const credential = new ManagedIdentityCredential();
    await accessTokenClaims(credential);
    await createUserAndToken(credential);
  },
  // A managed identity that holds no role on the resource: ACS refuses it.
  async refused() {
    const credential = new ManagedIdentityCredential();
    await accessTokenClaims(credential);
    const attempts = {
      identity: () => createUserAndToken(credential),
      sms: () => sendSms(credential),
    };
    for (const [client, attempt] of Object.entries(attempts)) {
      try {
        await attempt();
        emit({ step: "refused", client, refused: false });
      } catch (e) {
        emit({
          step: "refused",
          client,
          refused: true,
          name: e.name,
          statusCode: e.statusCode,
          code: e.code ?? null,
          message: e.message,
        });
      }
    }
  },
  // An access key: the SDK signs each request with HMAC-SHA256.
  async key() {
    await createUserAndToken(env("ACS_CONNECTION_STRING"));
  },
  // The developer's laptop: DefaultAzureCredential finds no managed identity and moves on to
  // the Azure CLI, signed in as the developer's own service principal.
  async laptop() {
    const credential = new DefaultAzureCredential();
    await accessTokenClaims(credential);
    await createUserAndToken(credential);
  },
  // A call to a host that is not loopback, once (no retries): it must fail at the dead proxy.
  async stray() {
    const client = new CommunicationIdentityClient(env("ACS_CONNECTION_STRING"), {
      retryOptions: { maxRetries: 0 },
    });
    await client.createUser();
    emit({ step: "stray", reached: true });
  },
};

const step = steps[process.argv[2]];
if (!step) {
  console.error(`usage: node flow.mjs ${Object.keys(steps).join("|")}`);
  process.exit(2);
}
await step();
