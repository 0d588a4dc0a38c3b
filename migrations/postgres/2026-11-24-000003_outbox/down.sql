DROP TABLE mail_optouts;
DROP TABLE outbox;
