// Node-RED settings for MoodStream's flow. The credentials file (flows_cred.json) holds only
// ${ENV} placeholders, filled from the environment at start-up, so it is kept unencrypted.
module.exports = {
    flowFile: "flows.json",
    credentialSecret: false,
    flowFilePretty: true,
    logging: { console: { level: "info", metrics: false, audit: false } },
};
