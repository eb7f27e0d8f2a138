// The DelightBridge web app's tables at its current release, as Drizzle definitions, so
// that the contract tests can run the web app's own deploy tool (`drizzle-kit push`)
// against databases this service migrated. Written for this project from the facts in
// tests/fixtures/delightbridge-schema.sql (the shared reference): the same columns,
// defaults, enums, and the names the tool gives constraints and indexes.
import {
  boolean,
  index,
  pgEnum,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
} from "drizzle-orm/pg-core";

export const threadStatus = pgEnum("thread_status", ["inbox", "sent", "archived"]);
export const emailDirection = pgEnum("email_direction", ["inbound", "outbound"]);
export const permissionLevel = pgEnum("permission_level", ["view", "edit", "send", "admin"]);
export const draftStatus = pgEnum("draft_status", ["pending", "ready", "sent", "skipped"]);
export const sendOutboxStatus = pgEnum("send_outbox_status", ["pending", "sent", "failed"]);

const createdAt = () => timestamp("created_at").notNull().defaultNow();

export const users = pgTable("users", {
  id: text("id").primaryKey(),
  googleId: text("google_id").notNull().unique(),
  email: text("email").notNull().unique(),
  name: text("name").notNull(),
  picture: text("picture"),
  permission: permissionLevel("permission").notNull().default("view"),
  createdAt: createdAt(),
});

export const workspaceMembers = pgTable("workspace_members", {
  email: text("email").primaryKey(),
  permission: permissionLevel("permission").notNull().default("view"),
  createdAt: createdAt(),
});

export const gmailAccounts = pgTable("gmail_accounts", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  email: text("email").notNull().unique(),
  color: text("color").notNull().default("#3b5bdb"),
  signature: text("signature").notNull().default(""),
  document: text("document").notNull().default(""),
  templates: text("templates").notNull().default("[]"),
  accessToken: text("access_token"),
  refreshToken: text("refresh_token"),
  lastHistoryId: text("last_history_id"),
  createdAt: createdAt(),
});

const account = () =>
  text("account_id").notNull().references(() => gmailAccounts.id, { onDelete: "cascade" });

export const serviceSenderIdentities = pgTable(
  "service_sender_identities",
  {
    id: text("id").primaryKey(),
    accountId: account(),
    email: text("email").notNull(),
    displayName: text("display_name").notNull().default(""),
    isDefault: boolean("is_default").notNull().default(false),
    isEnabled: boolean("is_enabled").notNull().default(true),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex("service_sender_identities_account_email_uidx").on(t.accountId, t.email),
    index("service_sender_identities_account_idx").on(t.accountId),
  ],
);

export const categories = pgTable("categories", {
  id: text("id").primaryKey(),
  accountId: account(),
  name: text("name").notNull(),
  color: text("color").notNull(),
  textColor: text("text_color").notNull(),
});

export const emailThreads = pgTable(
  "email_threads",
  {
    id: text("id").primaryKey(),
    accountId: account(),
    gmailThreadId: text("gmail_thread_id"),
    subject: text("subject").notNull(),
    customerEmail: text("customer_email").notNull(),
    customerName: text("customer_name").notNull(),
    categoryId: text("category_id"),
    replyFromEmail: text("reply_from_email"),
    status: threadStatus("status").notNull().default("inbox"),
    detectedLanguage: text("detected_language").notNull().default("en"),
    isRead: boolean("is_read").notNull().default(false),
    lastMessageAt: timestamp("last_message_at").notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    index("email_threads_account_last_message_idx").on(t.accountId, t.lastMessageAt),
    index("email_threads_gmail_thread_idx").on(t.gmailThreadId),
    uniqueIndex("email_threads_account_gmail_thread_uidx").on(t.accountId, t.gmailThreadId),
  ],
);

const thread = () =>
  text("thread_id").notNull().references(() => emailThreads.id, { onDelete: "cascade" });

export const emails = pgTable(
  "emails",
  {
    id: text("id").primaryKey(),
    threadId: thread(),
    gmailMessageId: text("gmail_message_id"),
    rfcMessageId: text("rfc_message_id"),
    inReplyTo: text("in_reply_to"),
    references: text("references"),
    fromEmail: text("from_email").notNull(),
    fromName: text("from_name").notNull(),
    toEmail: text("to_email").notNull(),
    toHeader: text("to_header"),
    ccHeader: text("cc_header"),
    body: text("body").notNull(),
    direction: emailDirection("direction").notNull(),
    sentAt: timestamp("sent_at").notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    index("emails_thread_sent_at_idx").on(t.threadId, t.sentAt),
    index("emails_gmail_message_idx").on(t.gmailMessageId),
    uniqueIndex("emails_gmail_message_uidx").on(t.gmailMessageId),
  ],
);

export const drafts = pgTable("drafts", {
  id: text("id").primaryKey(),
  threadId: thread().unique(),
  subject: text("subject").notNull().default(""),
  content: text("content").notNull().default(""),
  translation: text("translation").notNull().default(""),
  status: draftStatus("status").notNull().default("pending"),
  sentAt: timestamp("sent_at"),
  updatedAt: timestamp("updated_at").notNull().defaultNow(),
});

export const sendOutbox = pgTable(
  "send_outbox",
  {
    idempotencyKey: text("idempotency_key").primaryKey(),
    threadId: thread(),
    draftUpdatedAt: timestamp("draft_updated_at"),
    status: sendOutboxStatus("status").notNull().default("pending"),
    startedAt: timestamp("started_at"),
    gmailMessageId: text("gmail_message_id"),
    error: text("error"),
    createdAt: createdAt(),
    updatedAt: timestamp("updated_at").notNull().defaultNow(),
  },
  (t) => [index("send_outbox_thread_idx").on(t.threadId)],
);
