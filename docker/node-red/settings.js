// Node-RED settings for MoodStream's flow. The credentials file (flows_cred.json) holds only
// ${ENV} placeholders, filled from the environment at start-up, so it is kept unencrypted.
//
// The editor and its admin API can rewrite every flow, so they require a login: the user and
// password come from NODE_RED_ADMIN_USER / NODE_RED_ADMIN_PASSWORD (docker/.env). Without a
// password of at least 8 characters Node-RED refuses to start.
const crypto = require("crypto");

const MIN_PASSWORD_LENGTH = 8;
const adminUser = process.env.NODE_RED_ADMIN_USER || "admin";
const adminPassword = process.env.NODE_RED_ADMIN_PASSWORD || "";
if (adminPassword.length < MIN_PASSWORD_LENGTH) {
    throw new Error("NODE_RED_ADMIN_PASSWORD is empty or shorter than " + MIN_PASSWORD_LENGTH +
        " characters: set it in docker/.env (the Node-RED editor can change every flow, so it needs a login)");
}

// Compared as digests of equal length, in constant time: no timing hint about the password.
function same(given, expected) {
    const digest = (text) => crypto.createHash("sha256").update(String(text)).digest();
    return crypto.timingSafeEqual(digest(given), digest(expected));
}

const admin = { username: adminUser, permissions: "*" };

module.exports = {
    flowFile: "flows.json",
    credentialSecret: false,
    flowFilePretty: true,
    logging: { console: { level: "info", metrics: false, audit: false } },
    adminAuth: {
        type: "credentials",
        users: (username) => Promise.resolve(username === adminUser ? admin : null),
        authenticate: (username, password) => {
            const userMatches = same(username, adminUser);
            const passwordMatches = same(password, adminPassword);  // compared even when the user is wrong
            return Promise.resolve(userMatches && passwordMatches ? admin : null);
        },
    },
};
